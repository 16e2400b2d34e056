import ArgumentParser
import Foundation
import SAMBatch

struct EvalCommand: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "eval",
    abstract: "Compares a run's masks with the ground-truth segmentations of its COCO manifests (mIoU).",
    discussion: """
      Every prompt made from a COCO annotation that has a segmentation (polygons, RLE or \
      uncompressed RLE) is compared with it: the IoU of each stored mask is written to masks.gt_iou \
      (and the results view), exactly as pycocotools' maskUtils.iou computes it (iscrowd kept: \
      intersection over the mask's area). The mean counts, per prompt, the stored mask with the \
      highest predicted IoU; crowd annotations are left out of the means. For the box-prompt \
      protocol of EfficientViT-SAM / EdgeSAM run the job with `prompts: {multimask: true, keep: best}`.
      """)

  @Argument(help: "The job file (YAML).") var job: String
  @Option(help: "Evaluate this shard's database (I/N).") var shard: String?
  @Option(help: "Evaluate this database instead of the job's.") var database: String?

  func run() throws {
    try reportingErrors("eval") {
      let jobFile = try JobFile.load(contentsOf: URL(fileURLWithPath: job))
      let shard = try shard.map { try Shard(parsing: $0) } ?? .whole
      let db =
        database.map { URL(fileURLWithPath: $0) } ?? shard.database(for: jobFile.database)
      let summary = try GroundTruthEvaluator.evaluate(job: jobFile, database: db)
      for problem in summary.problems { note("warning: \(problem)") }
      guard let overall = summary.overall else {
        print(
          "No prompt of this job has a ground-truth segmentation to compare with (\(summary.masks) masks).")
        if summary.withoutSegmentation > 0 {
          print("\(summary.withoutSegmentation) prompts come from annotations without 'segmentation'.")
        }
        return
      }
      func line(_ g: EvalSummary.Group) -> String {
        "  \(g.name.padding(toLength: 24, withPad: " ", startingAt: 0)) \(String(format: "%.4f", g.meanIoU))  (\(g.count))"
      }
      print(
        "mIoU \(String(format: "%.4f", overall.meanIoU)) over \(overall.count) prompts (gt_iou stored for \(summary.masks) masks)"
      )
      if summary.crowdPrompts > 0 {
        print("(\(summary.crowdPrompts) crowd annotations left out of the means)")
      }
      print("by area (COCO: small < 32^2, medium < 96^2, large):")
      summary.byArea.forEach { print(line($0)) }
      print("by category:")
      summary.perCategory.forEach { print(line($0)) }
    }
  }
}
