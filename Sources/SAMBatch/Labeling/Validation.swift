import Foundation
import SAMImage

/// What `sambatch validate` found: the checks `run` makes before the model loads, with nothing
/// written (no database is opened or created).
public struct ValidationReport: Sendable {
  public var images = 0
  public var unreadableImages = 0
  public var prompts = 0
  public var rejectedPrompts = 0
  public var clippedPrompts = 0
  public var manifestProblems = 0
  /// Objects left out by `prompts.min_score`.
  public var belowMinScore = 0
  /// Every problem, one line each, naming the file (and line, image or prompt) and the cause.
  public var problems: [String] = []
  /// Clipped boxes (the run goes on with them), one line each.
  public var warnings: [String] = []

  public var isClean: Bool { problems.isEmpty }
}

public enum JobValidator {
  /// Reads the manifests, checks that every image exists and its header decodes (size after EXIF
  /// orientation, as the run sees it), and prepares every prompt against that size (boxes in
  /// range, points inside). Throws only what stops `run` before any work: a bad job file or a
  /// manifest that cannot be read at all.
  public static func validate(_ job: JobFile, modelOverride: URL? = nil) throws -> ValidationReport {
    var report = ValidationReport()
    if let model = modelOverride ?? job.model {
      if !FileManager.default.fileExists(atPath: model.path) {
        report.problems.append("model: \(model.path) does not exist")
      }
    } else {
      report.problems.append("model: no 'model:' in the job and SAMBATCH_MODEL is not set")
    }
    let manifests = try LoadedManifests.load(job)
    // As `run` refuses it: a job with no image cannot run (an empty folder, a wrong `images:`).
    if manifests.images.isEmpty { throw SAMBatchError.noImages(in: job) }
    report.warnings += manifests.notes
    report.belowMinScore = manifests.belowMinScore
    report.manifestProblems = manifests.problems.count
    for p in manifests.problems {
      report.problems.append("\(p.line.map { "\(p.file):\($0)" } ?? p.file): \(p.message)")
    }
    for entry in manifests.images {
      report.images += 1
      let file =
        entry.path.hasPrefix("/")
        ? URL(fileURLWithPath: entry.path) : job.images.appendingPathComponent(entry.path)
      let size: (width: Int, height: Int)
      do {
        size = try ImageDecoder.size(
          contentsOf: file, applyEXIFOrientation: job.exif, maxPixels: job.maxImagePixels)
      } catch let error as ImageError {
        // The decoder's message starts with the file's full path: not said twice.
        report.unreadableImages += 1
        report.problems.append("\(entry.path): \(error.localizedDescription)")
        continue
      } catch {
        report.unreadableImages += 1
        report.problems.append(
          "\(entry.path): cannot read the image \(file.path): \(error.localizedDescription)")
        continue
      }
      for (index, object) in entry.objects.enumerated() {
        report.prompts += 1
        let prepared = PromptBuilder.prepare(object, width: size.width, height: size.height)
        let name = "\(entry.path) prompt \(index)\(object.sourceId.map { " (\($0))" } ?? "")"
        if let error = prepared.error {
          report.rejectedPrompts += 1
          report.problems.append("\(name): \(error)")
        } else if let warning = prepared.warning {
          report.clippedPrompts += 1
          report.warnings.append("\(name): \(warning)")
        }
      }
    }
    return report
  }
}
