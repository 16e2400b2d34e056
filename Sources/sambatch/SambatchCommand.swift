import ArgumentParser
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
      exit(withError: error)
    }
  }
}
