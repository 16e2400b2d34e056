import Foundation

/// What a finished run of a built binary gave.
public struct BinaryResult: Sendable {
  /// The exit status, or the signal number when `terminatedBySignal`.
  public var status: Int32
  public var terminatedBySignal: Bool
  public var timedOut: Bool
  public var stdoutData: Data
  public var stderrData: Data
  public var stdout: String { String(decoding: stdoutData, as: UTF8.self) }
  public var stderr: String { String(decoding: stderrData, as: UTF8.self) }
}

/// Why a binary could not be run.
public enum BinaryRunnerError: Error, LocalizedError {
  case missingBinary(name: String, looked: String)
  case launchFailed(name: String, reason: String)

  public var errorDescription: String? {
    switch self {
    case .missingBinary(let name, let looked):
      return
        "the '\(name)' binary is not at \(looked): build it first (`swift build`, or `swift build --build-tests`)"
    case .launchFailed(let name, let reason): return "could not launch \(name): \(reason)"
    }
  }
}

/// A built binary of this package started in the background; stdout and stderr go to temporary
/// files (no pipe to fill up and block the child).
public final class RunningBinary: @unchecked Sendable {
  public let process: Process
  private let outURL: URL
  private let errURL: URL

  fileprivate init(process: Process, outURL: URL, errURL: URL) {
    self.process = process
    self.outURL = outURL
    self.errURL = errURL
  }

  public var processIdentifier: Int32 { process.processIdentifier }

  /// Sends `signal` (e.g. SIGKILL) to the process.
  public func send(_ signal: Int32) { kill(process.processIdentifier, signal) }

  /// Waits up to `timeout` seconds; on timeout the process is killed (SIGKILL) and the result says
  /// `timedOut`.
  public func wait(timeout: TimeInterval) -> BinaryResult {
    let deadline = Date().addingTimeInterval(timeout)
    var timedOut = false
    while process.isRunning {
      if Date() > deadline {
        timedOut = true
        send(SIGKILL)
        process.waitUntilExit()
        break
      }
      usleep(10_000)
    }
    process.waitUntilExit()
    let result = BinaryResult(
      status: process.terminationStatus, terminatedBySignal: process.terminationReason == .uncaughtSignal,
      timedOut: timedOut, stdoutData: (try? Data(contentsOf: outURL)) ?? Data(),
      stderrData: (try? Data(contentsOf: errURL)) ?? Data())
    try? FileManager.default.removeItem(at: outURL)
    try? FileManager.default.removeItem(at: errURL)
    return result
  }
}

/// Runs the executables this package builds (e.g. `sambatch`) from tests.
public enum BinaryRunner {
  /// The build products folder the test bundle runs from (.build/debug or .build/release).
  public static var productsDirectory: URL {
    #if os(macOS)
      for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
        return bundle.bundleURL.deletingLastPathComponent()
      }
      return Bundle.main.bundleURL
    #else
      return Bundle.main.bundleURL
    #endif
  }

  /// The built binary `name`, or an error saying how to build it.
  public static func executable(_ name: String = "sambatch") throws -> URL {
    let url = productsDirectory.appendingPathComponent(name)
    guard FileManager.default.isExecutableFile(atPath: url.path) else {
      throw BinaryRunnerError.missingBinary(name: name, looked: url.path)
    }
    return url
  }

  /// Starts `name` with `arguments`. The environment is this process's, with `environment`
  /// applied on top (a nil value removes the variable). `stdin` is written to a file the child
  /// reads; without it the child reads /dev/null.
  public static func start(
    _ arguments: [String], executable name: String = "sambatch", environment: [String: String?] = [:],
    stdin: Data? = nil, currentDirectory: URL? = nil
  ) throws -> RunningBinary {
    let process = Process()
    process.executableURL = try executable(name)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for (key, value) in environment { env[key] = value }
    process.environment = env
    if let currentDirectory { process.currentDirectoryURL = currentDirectory }
    let temp = FileManager.default.temporaryDirectory
    let id = UUID().uuidString
    let outURL = temp.appendingPathComponent("binary-runner-\(id).out")
    let errURL = temp.appendingPathComponent("binary-runner-\(id).err")
    let inURL = temp.appendingPathComponent("binary-runner-\(id).in")
    var parentHandles: [FileHandle] = []
    // The child has its own copies of the descriptors once it runs: close ours in every case.
    defer { for handle in parentHandles { try? handle.close() } }
    do {
      FileManager.default.createFile(atPath: outURL.path, contents: nil)
      FileManager.default.createFile(atPath: errURL.path, contents: nil)
      let out = try FileHandle(forWritingTo: outURL)
      let err = try FileHandle(forWritingTo: errURL)
      parentHandles += [out, err]
      process.standardOutput = out
      process.standardError = err
      if let stdin {
        try stdin.write(to: inURL)
        let input = try FileHandle(forReadingFrom: inURL)
        parentHandles.append(input)
        process.standardInput = input
      } else {
        process.standardInput = FileHandle.nullDevice
      }
      try process.run()
    } catch {
      throw BinaryRunnerError.launchFailed(name: name, reason: error.localizedDescription)
    }
    try? FileManager.default.removeItem(at: inURL)  // the child holds it open
    return RunningBinary(process: process, outURL: outURL, errURL: errURL)
  }

  /// Runs `name` to completion (killed after `timeout` seconds) and returns its status and output.
  public static func run(
    _ arguments: [String], executable name: String = "sambatch", environment: [String: String?] = [:],
    stdin: Data? = nil, currentDirectory: URL? = nil, timeout: TimeInterval = 120
  ) throws -> BinaryResult {
    try start(
      arguments, executable: name, environment: environment, stdin: stdin, currentDirectory: currentDirectory
    ).wait(timeout: timeout)
  }
}
