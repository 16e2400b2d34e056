import ArgumentParser
import SAMBatch

@main
struct Sambatch: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "sambatch",
    abstract: "Runs MobileSAM over whole datasets: prompts in, masks out.",
    subcommands: [
      PredictCommand.self, RunCommand.self, StatusCommand.self, ExportCommand.self, MergeCommand.self,
    ])
}
