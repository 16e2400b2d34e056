import ArgumentParser
import Foundation
import SAMTensor

@main
struct Sambatch: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sambatch",
    abstract: "Runs MobileSAM over whole datasets: prompts in, masks out.",
    subcommands: [
      PredictCommand.self, RunCommand.self, StatusCommand.self, ExportCommand.self, MergeCommand.self,
      BenchCommand.self, ValidateCommand.self, EvalCommand.self, ReviewCommand.self, BenchLoadCommand.self,
    ])

  static func main() {
    // Every kernel returns a fresh tensor; keeping large freed blocks for reuse saves ~20% of an
    // encode in page faults (see TensorMemory).
    TensorMemory.reuseLargeAllocations()
    // How long the compute threads spin for the next parallel loop before they sleep (README,
    // "Thread plan"): 0 on a machine so shared that a spinning thread would take a core others need.
    if let spin = ProcessInfo.processInfo.environment["SAMBATCH_THREAD_SPIN_US"] {
      guard let microseconds = Int(spin), (0...100_000).contains(microseconds) else {
        note(
          "\(commandPath(CommandLine.arguments.dropFirst())): error: SAMBATCH_THREAD_SPIN_US must be a whole "
            + "number of microseconds from 0 to 100000, not '\(spin)'")
        Foundation.exit(ExitCode.validationFailure.rawValue)
      }
      setThreadSpinMicroseconds(microseconds)
    }
    do {
      var command = try parseAsRoot()
      try command.run()
    } catch {
      // Help, --version and the exit codes our commands throw after printing their own error line
      // go through ArgumentParser; its parse errors ("Error: Missing expected argument") are
      // reworded to read as every other error of the command.
      let status = exitCode(for: error)
      if error is ExitCode || status.isSuccess { exit(withError: error) }
      let message = fullMessage(for: error)
      let prefix = "Error: "
      let body = message.hasPrefix(prefix) ? String(message.dropFirst(prefix.count)) : message
      note("\(commandPath(CommandLine.arguments.dropFirst())): error: \(body)")
      Foundation.exit(status.rawValue)
    }
  }

  /// "sambatch run" when the arguments start with a subcommand's name, else "sambatch".
  static func commandPath(_ arguments: ArraySlice<String>) -> String {
    let names = configuration.subcommands.compactMap { $0.configuration.commandName }
    guard let first = arguments.first, names.contains(first) else { return "sambatch" }
    return "sambatch \(first)"
  }
}
