import Foundation

/// Headless Chromium from the system packages (`make test` installs it), to check that pages
/// render in a real browser.
public enum Chromium {
  /// The first of chromium, chromium-browser, google-chrome on PATH.
  public static func binary() -> URL? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
    for dir in path.split(separator: ":") {
      for name in ["chromium", "chromium-browser", "google-chrome"] {
        let url = URL(fileURLWithPath: String(dir)).appendingPathComponent(name)
        if FileManager.default.isExecutableFile(atPath: url.path) { return url }
      }
    }
    return nil
  }

  public static let missingReason = "no chromium on PATH (apt-get install chromium; `make test` does)"

  /// Runs Chromium headless on `page` with `arguments` (e.g. `--dump-dom`, `--screenshot=PATH`),
  /// its log on stderr; `scratch` holds the profile and the captured output.
  public static func run(_ binary: URL, page: URL, arguments: [String], scratch: URL) throws -> (
    stdout: String, stderr: String
  ) {
    let id = UUID().uuidString
    let process = Process()
    process.executableURL = binary
    process.arguments =
      [
        "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--user-data-dir=\(scratch.appendingPathComponent("profile-\(id)").path)", "--enable-logging=stderr",
        "--v=0", "--virtual-time-budget=3000",
      ] + arguments + [page.absoluteString]
    // Into files rather than pipes: Chromium's log can be large and nothing has to drain it.
    let outURL = scratch.appendingPathComponent("chromium-\(id).out")
    let errURL = scratch.appendingPathComponent("chromium-\(id).err")
    FileManager.default.createFile(atPath: outURL.path, contents: nil)
    FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let out = try FileHandle(forWritingTo: outURL)
    let err = try FileHandle(forWritingTo: errURL)
    process.standardOutput = out
    process.standardError = err
    try process.run()
    process.waitUntilExit()
    try out.close()
    try err.close()
    return (
      String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
      String(decoding: try Data(contentsOf: errURL), as: UTF8.self)
    )
  }

  /// Uncaught exceptions and console errors in Chromium's log.
  public static func consoleErrors(_ log: String) -> [String] {
    log.split(separator: "\n").map(String.init).filter {
      $0.contains("Uncaught") || ($0.contains("CONSOLE") && $0.contains(":ERROR:"))
    }
  }
}
