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
