import Foundation

/// stderr lines (progress and notes go to stderr, results to stdout).
func note(_ text: String) {
  FileHandle.standardError.write(Data((text + "\n").utf8))
}

func isTerminal(_ fd: Int32) -> Bool { isatty(fd) == 1 }
