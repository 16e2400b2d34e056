import ArgumentParser
import Foundation
import SAMBatch

struct ValidateCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "validate",
    abstract: "Checks a job as `run` would before loading the model, writing nothing.",
    discussion: """
      Reads the job file and every manifest, checks that each image exists and its header decodes, \
      and prepares every prompt against the image's size (boxes in range, points inside). Prints \
      counts and every problem. Opens and creates no database. Exit status: 0 no problem, 2 some \
      problems (the run would record them and go on), 1 the job could not run at all.
      """)

  @Argument(help: "The job file (YAML).") var job: String

  func run() throws {
    try reportingErrors("validate") {
      let jobFile = try JobFile.load(contentsOf: URL(fileURLWithPath: job))
      let override = ProcessInfo.processInfo.environment["SAMBATCH_MODEL"].map { URL(fileURLWithPath: $0) }
      let fake = ProcessInfo.processInfo.environment["SAMBATCH_FAKE_SEGMENTER"] == "1"
      var report = try JobValidator.validate(jobFile, modelOverride: override)
      if fake { report.problems.removeAll { $0.hasPrefix("model: ") } }
      for warning in report.warnings { print("warning: \(warning)") }
      for problem in report.problems { print("problem: \(problem)") }
      if jobFile.everything != nil {
        // No prompts, no detector scores: the generator's grid is the one prompt of each image.
        print(
          "\(count(report.images, "image")) (\(report.unreadableImages) unreadable), "
            + count(
              report.manifestProblems, jobFile.imageList != nil ? "image list problem" : "manifest problem"))
      } else {
        print(
          "\(report.images) images (\(report.unreadableImages) unreadable), \(report.prompts) prompts "
            + "(\(report.rejectedPrompts) rejected, \(report.clippedPrompts) clipped), "
            + "\(report.manifestProblems) manifest problems, \(report.belowMinScore) objects below min_score")
      }
      print(report.isClean ? "OK: the job can run." : "\(report.problems.count) problems.")
      if !report.isClean { throw ExitCode(2) }
    }
  }
}
