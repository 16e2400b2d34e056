import Foundation
import GRDB
import SAMImage
import TestSupport
import XCTest

@testable import SAMBatch
@testable import SAMBatchFakes

/// Everything jobs: the `everything:` section and its refusals, how the images are found, and
/// runs with the fake segmenter (masks stored with their point and crop, zero-mask images done).
final class EverythingJobTests: XCTestCase {
  let jobURL = URL(fileURLWithPath: "/data/jobs/job.yaml")

  func testEverythingSectionTakesTheReferenceNamesAndDefaults() throws {
    let job = try JobFile.parse(
      yaml: """
        version: 1
        images: photos
        everything:
          points_per_side: 16
          points_per_batch: 32
          pred_iou_thresh: 0.5
          stability_score_thresh: 0.8
          stability_score_offset: 0.5
          box_nms_thresh: 0.6
          crop_n_layers: 1
          crop_nms_thresh: 0.65
          crop_overlap_ratio: 0.25
          crop_n_points_downscale_factor: 2
          min_mask_region_area: 100
        image_list: list.txt
        """, jobURL: jobURL)
    var expected = EverythingParameters()
    expected.pointsPerSide = 16
    expected.pointsPerBatch = 32
    expected.predIouThresh = 0.5
    expected.stabilityScoreThresh = 0.8
    expected.stabilityScoreOffset = 0.5
    expected.boxNmsThresh = 0.6
    expected.cropNLayers = 1
    expected.cropNmsThresh = 0.65
    expected.cropOverlapRatio = 0.25
    expected.cropNPointsDownscaleFactor = 2
    expected.minMaskRegionArea = 100
    XCTAssertEqual(job.everything, expected)
    XCTAssertEqual(job.imageList?.path, "/data/jobs/list.txt")
    XCTAssertEqual(job.manifests, [])

    for section in ["everything: {}", "everything:"] {
      let defaults = try JobFile.parse(yaml: "version: 1\n\(section)\n", jobURL: jobURL)
      XCTAssertEqual(defaults.everything, EverythingParameters(), section)
      XCTAssertNil(defaults.imageList)
    }
    let withManifests = try JobFile.parse(
      yaml: "version: 1\neverything: {points_per_side: 4}\nmanifests: [{path: m.jsonl, format: jsonl}]\n",
      jobURL: jobURL)
    XCTAssertEqual(withManifests.manifests.count, 1)
    XCTAssertEqual(withManifests.everything?.pointsPerSide, 4)
  }

  /// Every bad value of the section is a `jobParameter` error (exit 64 on the command line) that
  /// names the key; its line is the key's.
  func testBadParametersAreRefusedNamingTheKey() {
    let cases: [(String, String, Int)] = [
      ("points_per_side: 0", "points_per_side 0: must be an integer from 1 to 512", 3),
      ("points_per_side: 10000", "points_per_side 10000", 3),
      ("pred_iou_thresh: .nan", "pred_iou_thresh nan", 3),
      ("stability_score_thresh: .nan", "stability_score_thresh nan", 3),
      ("box_nms_thresh: 1.5", "box_nms_thresh 1.5", 3),
      ("crop_overlap_ratio: -0.1", "crop_overlap_ratio -0.1", 3),
      ("crop_n_layers: 9", "crop_n_layers 9", 3),
      ("min_mask_region_area: -1", "min_mask_region_area -1", 3),
      ("points_per_batch: 0", "points_per_batch 0", 3),
      ("points_per_side: many", "'everything.points_per_side': must be an integer, got 'many'", 3),
      ("pred_iou_thresh: '0.5'", "'everything.pred_iou_thresh': must be a number", 3),
      ("point_per_side: 4", "'everything.point_per_side': unknown key", 3),
      ("crop_n_layers: 1\n  points_per_side: 2\n  crop_n_points_downscale_factor: 4", "leaves no point", 5),
    ]
    for (body, fragment, line) in cases {
      let yaml = "version: 1\neverything:\n  \(body)\n"
      XCTAssertThrowsError(try JobFile.parse(yaml: yaml, jobURL: jobURL), body) { error in
        guard case .jobParameter(_, let errorLine, _, _) = error as? SAMBatchError else {
          return XCTFail("\(body): \(error)")
        }
        XCTAssertEqual(errorLine, line, body)
        XCTAssertTrue(error.localizedDescription.contains(fragment), "\(body): \(error.localizedDescription)")
      }
    }
    XCTAssertThrowsError(try JobFile.parse(yaml: "version: 1\neverything: 3\n", jobURL: jobURL)) {
      guard case .jobParameter = $0 as? SAMBatchError else { return XCTFail("\($0)") }
    }
  }

  /// What does not go together is a job error (exit 1) naming the key.
  func testConflictingSectionsAreRefused() {
    let cases: [(String, String)] = [
      ("everything: {}\nprompts: {multimask: true}", "'prompts': does not apply to an everything job"),
      ("image_list: l.txt\nmanifests: [{path: m.jsonl, format: jsonl}]", "'image_list': only applies"),
      (
        "everything: {}\nimage_list: l.txt\nmanifests: [{path: m.jsonl, format: jsonl}]",
        "'image_list': only applies"
      ),
      ("images: x", "'manifests': is required"),
    ]
    for (body, fragment) in cases {
      XCTAssertThrowsError(try JobFile.parse(yaml: "version: 1\n\(body)\n", jobURL: jobURL), body) { error in
        guard case .job = error as? SAMBatchError else { return XCTFail("\(body): \(error)") }
        XCTAssertTrue(error.localizedDescription.contains(fragment), "\(body): \(error.localizedDescription)")
      }
    }
  }

  func testFolderListingIsRecursiveSortedAndSkipsHiddenAndOtherFiles() throws {
    let dir = try temporaryDirectory()
    let files = [
      "b.png", "a.JPG", "A.jpeg", "sub/z.jpg", "sub/deeper/c.PNG", "sub/notes.txt", ".hidden.jpg",
      ".cache/x.jpg", "sub/.y.png", "a.jpg.txt", "upper.JPEG",
    ]
    for file in files {
      let url = dir.appendingPathComponent(file)
      try FileManager.default.createDirectory(
        at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
      try Data([1]).write(to: url)
    }
    // A link back up would loop forever if followed blindly.
    try FileManager.default.createSymbolicLink(
      at: dir.appendingPathComponent("sub/loop"), withDestinationURL: dir)
    // A link to an image on a disk that is not mounted is listed (and fails when read), not
    // left out without a word; a broken link named otherwise is no image.
    try FileManager.default.createSymbolicLink(
      atPath: dir.appendingPathComponent("sub/gone.jpg").path, withDestinationPath: "/nonexistent/gone.jpg")
    try FileManager.default.createSymbolicLink(
      atPath: dir.appendingPathComponent("sub/gone.txt").path, withDestinationPath: "/nonexistent/gone.txt")
    XCTAssertEqual(
      try ImageListing.folderImages(in: dir),
      ["A.jpeg", "a.JPG", "b.png", "sub/deeper/c.PNG", "sub/gone.jpg", "sub/z.jpg", "upper.JPEG"])
    // Two more names of b.png (a link beside it, a link in a linked-to folder): listed once.
    try FileManager.default.createSymbolicLink(
      atPath: dir.appendingPathComponent("sub/b-again.png").path, withDestinationPath: "../b.png")
    try FileManager.default.createSymbolicLink(
      atPath: dir.appendingPathComponent("0-first.png").path, withDestinationPath: "b.png")
    var others: [String: Int] = [:]
    var repeats: [(path: String, first: String)] = []
    XCTAssertEqual(
      try ImageListing.folderImages(in: dir, otherFiles: &others, repeats: &repeats),
      ["0-first.png", "A.jpeg", "a.JPG", "sub/deeper/c.PNG", "sub/gone.jpg", "sub/z.jpg", "upper.JPEG"])
    XCTAssertEqual(repeats.map(\.path), ["b.png", "sub/b-again.png"])
    XCTAssertEqual(repeats.map(\.first), ["0-first.png", "0-first.png"])
    XCTAssertEqual(
      ImageListing.repeatsNote(repeats, folder: dir),
      "the images folder \(dir.path) holds 2 more names of images listed already (links: b.png is "
        + "0-first.png, sub/b-again.png is 0-first.png): each image is segmented once, under its first name")
    XCTAssertThrowsError(try ImageListing.folderImages(in: dir.appendingPathComponent("absent"))) {
      guard case .imagesFolderMissing = $0 as? SAMBatchError else { return XCTFail("\($0)") }
    }
    // `images: list.txt` (a list where the folder goes) is not "missing": it is a file.
    XCTAssertThrowsError(try ImageListing.folderImages(in: dir.appendingPathComponent("b.png"))) {
      XCTAssertTrue($0.localizedDescription.contains("b.png, which is a file, not a folder"), "\($0)")
    }
  }

  /// Files of other types (drone TIFFs, sidecar files) are not read, and the run and `validate`
  /// say so with counts per type, so a half-read folder does not look fully processed.
  func testOtherFilesOfTheFolderAreCountedInANote() throws {
    let dir = try temporaryDirectory()
    for file in ["a.jpg", "b.TIF", "sub/c.tif", "sub/d.dng", "README", ".e.tif", ".cache/f.tif"] {
      let url = dir.appendingPathComponent("images/" + file)
      try FileManager.default.createDirectory(
        at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
      try Data([1]).write(to: url)
    }
    let job = dir.appendingPathComponent("job.yaml")
    try "version: 1\nimages: images\neverything: {}\n".write(to: job, atomically: true, encoding: .utf8)
    let expected =
      "the images folder \(dir.appendingPathComponent("images").path) holds 4 other files, not read "
      + "(.tif 2, no extension 1, .dng 1): only .jpg, .jpeg and .png are"
    let loaded = try LoadedManifests.load(try JobFile.load(contentsOf: job))
    XCTAssertEqual(loaded.images.map(\.path), ["a.jpg"])
    XCTAssertEqual(loaded.notes, [expected])
    let report = try JobValidator.validate(try JobFile.load(contentsOf: job))
    XCTAssertTrue(report.warnings.contains(expected), "\(report.warnings)")
    // a.jpg holds one byte: one problem, naming the listed name, then the full path once.
    let image = dir.appendingPathComponent("images/a.jpg").path
    let aboutImage = report.problems.filter { $0.contains("a.jpg") }
    XCTAssertEqual(aboutImage.count, 1, "\(report.problems)")
    XCTAssertTrue(
      aboutImage.first?.hasPrefix("a.jpg: \(image): unsupported image format") ?? false, "\(aboutImage)")
    XCTAssertEqual(aboutImage.first?.components(separatedBy: image).count, 2, "\(aboutImage)")
    XCTAssertNil(ImageListing.otherFilesNote([:], folder: dir))
  }

  func testImageListKeepsItsOrderAndReportsDuplicates() throws {
    var problems: [ManifestProblem] = []
    let text = "# the first ones\nz.jpg\n\n  b/a.png  \n./z.jpg\nmissing.jpg\n/data/images/b/a.png\n"
    let folder = URL(fileURLWithPath: "/data/images")
    let images = ImageListing.listed(
      Data(text.utf8), file: "list.txt", imagesFolder: folder, problems: &problems)
    XCTAssertEqual(images.map(\.path), ["z.jpg", "b/a.png", "missing.jpg"])
    XCTAssertEqual(images.map(\.line), [2, 4, 6])
    XCTAssertEqual(problems.map(\.line), [5, 7], "a relative and an absolute path to one file are one image")
    XCTAssertTrue(problems.first?.message.contains("listed on line 2 already") ?? false)
    XCTAssertTrue(problems.last?.message.contains("listed on line 4 already") ?? false)
  }

  /// masks.csv quotes every field a CSV reader would split: a comma, a quote, and any line break
  /// in a file name (LF, CRLF, CR), which an images folder may hold.
  func testMasksCSVQuotesEveryLineBreak() {
    XCTAssertEqual(Exporter.csvField("a.png"), "a.png")
    XCTAssertEqual(Exporter.csvField("a,b.png"), "\"a,b.png\"")
    XCTAssertEqual(Exporter.csvField("say \"hi\".png"), "\"say \"\"hi\"\".png\"")
    for name in ["new\nline.png", "new\r\nline.png", "new\rline.png"] {
      XCTAssertEqual(Exporter.csvField(name), "\"\(name)\"", name.debugDescription)
    }
  }

  /// A list saved by a Windows editor (byte order mark, CRLF) names the same images on the same
  /// lines: a CRLF is one Swift Character, so splitting on "\n" alone would read one long path.
  func testImageListFromWindowsEditorReadsLineByLine() throws {
    var problems: [ManifestProblem] = []
    let text = "\u{FEFF}# comment\r\nz.jpg\r\n\r\nb/a.png\r\n"
    let images = ImageListing.listed(
      Data(text.utf8), file: "list.txt", imagesFolder: URL(fileURLWithPath: "/data"), problems: &problems)
    XCTAssertEqual(images.map(\.path), ["z.jpg", "b/a.png"])
    XCTAssertEqual(images.map(\.line), [2, 4])
    XCTAssertEqual(problems.map(\.message), [])
  }

  // MARK: Runs with the fake segmenter

  /// A folder of small images (nested), and an everything job over it.
  private func everythingJob(_ parameters: String, extra: String = "") throws -> (dir: URL, job: URL) {
    let dir = try temporaryDirectory()
    let images = dir.appendingPathComponent("images")
    try FileManager.default.createDirectory(
      at: images.appendingPathComponent("more"), withIntermediateDirectories: true)
    for (name, fixture) in [
      ("a.png", "picture1_filters.png"), ("more/b.png", "picture2_small_regions.png"),
      ("c.png", "picture3_crops.png"),
    ] {
      try FileManager.default.copyItem(
        at: Fixtures.url("everything/\(fixture)"), to: images.appendingPathComponent(name))
    }
    let job = dir.appendingPathComponent("job.yaml")
    try "version: 1\nimages: images\nworkers: 1\neverything: \(parameters)\n\(extra)".write(
      to: job, atomically: true, encoding: .utf8)
    return (dir, job)
  }

  private func run(_ job: URL, options: RunOptions = RunOptions()) throws -> RunSummary {
    try JobRunner(
      job: try JobFile.load(contentsOf: job), model: FakeSegmenterSource(), options: options, log: { _ in }
    ).run()
  }

  /// A folder with no JPEG or PNG (an empty mount, TIFFs only) and an image list of comments stop
  /// `run` and `validate` alike, naming the folder or the list, not "the manifests" the job lacks.
  func testNoImageFoundNamesTheFolderOrListForRunAndValidate() throws {
    let dir = try temporaryDirectory()
    let images = dir.appendingPathComponent("images")
    try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
    try Data([1]).write(to: images.appendingPathComponent("photo.tif"))
    try "# none yet\n".write(to: dir.appendingPathComponent("list.txt"), atomically: true, encoding: .utf8)
    let job = dir.appendingPathComponent("job.yaml")
    for (extra, fragment) in [
      ("", "the images folder \(images.path) holds no .jpg, .jpeg or .png file"),
      (
        "image_list: list.txt\n",
        "the image list \(dir.appendingPathComponent("list.txt").path) names no image"
      ),
    ] {
      try "version: 1\nimages: images\neverything: {}\n\(extra)".write(
        to: job, atomically: true, encoding: .utf8)
      XCTAssertThrowsError(try run(job)) { error in
        XCTAssertTrue(error.localizedDescription.contains(fragment), error.localizedDescription)
      }
      XCTAssertThrowsError(try JobValidator.validate(try JobFile.load(contentsOf: job))) { error in
        XCTAssertTrue(error.localizedDescription.contains(fragment), error.localizedDescription)
      }
      XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("results.db").path))
    }
  }

  /// An image list's order is the job's; a listed image that is not there fails (exit 2) and is
  /// done by `--retry-failed` once it is; a path listed twice is a manifest problem.
  func testImageListRunsInItsOrderAndMissingImagesFail() throws {
    let (dir, job) = try everythingJob(
      "{points_per_side: 3, pred_iou_thresh: 0.5, stability_score_thresh: 0}", extra: "image_list: list.txt\n"
    )
    try "# mine\nc.png\nlater.png\n\nmore/b.png\nc.png\n".write(
      to: dir.appendingPathComponent("list.txt"), atomically: true, encoding: .utf8)
    let first = try run(job)
    XCTAssertEqual(first.exitStatus, 2)
    XCTAssertEqual(first.counts.done, 2)
    XCTAssertEqual(first.counts.failed, 1)
    XCTAssertEqual(first.counts.manifestProblems, 1)
    let database = dir.appendingPathComponent("results.db")
    let paths: [String] = try DatabaseQueue(path: database.path).read {
      try String.fetchAll($0, sql: "SELECT path FROM images ORDER BY id")
    }
    XCTAssertEqual(paths, ["c.png", "later.png", "more/b.png"])
    try FileManager.default.copyItem(
      at: dir.appendingPathComponent("images/a.png"), to: dir.appendingPathComponent("images/later.png"))
    var retry = RunOptions()
    retry.retryFailed = true
    let second = try run(job, options: retry)
    XCTAssertEqual(second.processed, 1)
    XCTAssertEqual(second.counts.done, 3)
  }

  /// Everything jobs take turns unless told otherwise; prompted jobs go side by side.
  func testEverythingJobsTakeTurnsByDefault() throws {
    let (_, everything) = try everythingJob("{points_per_side: 4}")
    let everythingFile = try JobFile.load(contentsOf: everything)
    XCTAssertEqual(ThreadPlan.chosen(nil, for: everythingFile), .takeTurns)
    XCTAssertEqual(ThreadPlan.chosen(.sideBySide, for: everythingFile), .sideBySide)
    let prompted = try TestJob(manifests: [
      ("m.jsonl", "jsonl", #"{"image": "picture1.jpg", "objects": [{"box": [10, 20, 300, 400]}]}"#)
    ])
    let promptedFile = try JobFile.load(contentsOf: prompted.jobURL)
    XCTAssertEqual(ThreadPlan.chosen(nil, for: promptedFile), .sideBySide)
    XCTAssertEqual(ThreadPlan.chosen(.takeTurns, for: promptedFile), .takeTurns)
  }

  /// Each worker whole images on its own thread gives the rows of taking turns.
  func testSideBySideThreadPlanGivesTheSameRows() throws {
    let (dir, job) = try everythingJob(
      "{points_per_side: 4, pred_iou_thresh: 0.5, stability_score_thresh: 0.3}")
    try "version: 1\nimages: images\nworkers: 2\neverything: {points_per_side: 4, pred_iou_thresh: 0.5,"
      .appending(" stability_score_thresh: 0.3}\n").write(to: job, atomically: true, encoding: .utf8)
    var turnsOptions = RunOptions()
    turnsOptions.threadPlan = .takeTurns
    _ = try run(job, options: turnsOptions)
    let turns = try resultDump(dir.appendingPathComponent("results.db"))
    var options = RunOptions()
    options.threadPlan = .sideBySide
    options.database = dir.appendingPathComponent("side.db")
    _ = try run(job, options: options)
    XCTAssertEqual(try resultDump(dir.appendingPathComponent("side.db")), turns)
    XCTAssertGreaterThan(turns.filter { $0.hasPrefix("mask ") }.count, 3)
  }

  func testFakeRunStoresEveryMaskWithPointAndCrop() throws {
    let (dir, job) = try everythingJob(
      "{points_per_side: 4, pred_iou_thresh: 0.5, stability_score_thresh: 0.3}")
    let summary = try run(job)
    XCTAssertEqual(summary.exitStatus, 0)
    XCTAssertEqual(summary.counts.done, 3)
    let database = dir.appendingPathComponent("results.db")
    let db = try DatabaseQueue(path: database.path)
    defer { try? db.close() }
    try db.read { db in
      XCTAssertEqual(
        try String.fetchAll(db, sql: "SELECT path FROM images ORDER BY id"), ["a.png", "c.png", "more/b.png"])
      let rows = try Row.fetchAll(db, sql: "SELECT * FROM results ORDER BY image_id, mask_index")
      XCTAssertGreaterThan(rows.count, 3)
      XCTAssertEqual(summary.counts.masks, rows.count)
      XCTAssertEqual(summary.counts.prompts, 3, "one prompt (the grid) per image")
      for row in rows {
        XCTAssertNil(row["category"] as String?)
        XCTAssertEqual(row["prompt_index"] as Int, 0)
        let (x, y): (Double, Double) = (row["point_x"], row["point_y"])
        // The fake's grid of 4 x 4 points, at cell centres, over the whole image (no crop).
        let (width, height): (Int, Int) = (row["width"], row["height"])
        XCTAssertEqual((x / Double(width) * 8).rounded(), x / Double(width) * 8, accuracy: 1e-9)
        XCTAssertEqual(y / Double(height) * 8, (y / Double(height) * 8).rounded(), accuracy: 1e-9)
        XCTAssertEqual(
          [row["crop_x"], row["crop_y"], row["crop_w"], row["crop_h"]] as [Int], [0, 0, width, height])
        let rle: String = row["rle"]
        let mask = try MaskRLE.decode(rle, width: width, height: height)
        XCTAssertEqual(MaskRLE.area(mask), row["area"] as Int)
        XCTAssertEqual(mask.pixels[Int(y) * width + Int(x)], 1, "the mask holds its point")
      }
    }
    // The masks are the fake's, in its order.
    let image = try ImageDecoder.decode(contentsOf: dir.appendingPathComponent("images/a.png"))
    var parameters = EverythingParameters()
    parameters.pointsPerSide = 4
    parameters.predIouThresh = 0.5
    parameters.stabilityScoreThresh = 0.3
    let made = try FakeSegmenter().segmentEverything(image, parameters: parameters)
    let stored: [String] = try db.read {
      try String.fetchAll($0, sql: "SELECT rle FROM masks WHERE image_id = 0 ORDER BY mask_index")
    }
    XCTAssertEqual(stored, made.masks.map(\.counts))
  }

  func testImageWhereNothingPassesIsDoneWithZeroMasks() throws {
    let (dir, job) = try everythingJob("{points_per_side: 4, pred_iou_thresh: 1, stability_score_thresh: 1}")
    let summary = try run(job)
    XCTAssertEqual(summary.exitStatus, 0)
    XCTAssertEqual(summary.counts.done, 3)
    XCTAssertEqual(summary.counts.masks, 0)
    XCTAssertEqual(summary.counts.noDetections, 0, "an everything image is one prompt, answered by no mask")
    let database = dir.appendingPathComponent("results.db")
    let pending: Int? = try DatabaseQueue(path: database.path).read {
      try Int.fetchOne($0, sql: "SELECT COUNT(*) FROM images WHERE status != 'done'")
    }
    XCTAssertEqual(pending, 0)
  }

  /// New images sorting after the others are added to a finished job; a changed `everything:`
  /// section is a changed job; an image in the middle of the listing moves the later ones.
  func testGrowingFolderAndChangedParameters() throws {
    let (dir, job) = try everythingJob("{points_per_side: 3, pred_iou_thresh: 0.5}")
    _ = try run(job)
    let images = dir.appendingPathComponent("images")
    try FileManager.default.copyItem(
      at: images.appendingPathComponent("a.png"), to: images.appendingPathComponent("z.png"))
    let grown = try run(job)
    XCTAssertEqual(grown.processed, 1)
    XCTAssertEqual(grown.counts.done, 4)
    XCTAssertTrue(try run(job).nothingToDo)

    try "version: 1\nimages: images\nworkers: 1\neverything: {points_per_side: 5}\n".write(
      to: job, atomically: true, encoding: .utf8)
    XCTAssertThrowsError(try run(job)) { error in
      XCTAssertTrue(
        // Integers as the job file writes them (3, not 3.0).
        error.localizedDescription.contains(
          "the settings changed (everything.points_per_side: 3 then, 5 now; everything.pred_iou_thresh: 0.5 then, 0.88 now)"
        ),
        error.localizedDescription)
    }
    try "version: 1\nimages: images\nworkers: 1\neverything: {points_per_side: 3, pred_iou_thresh: 0.5}\n"
      .write(to: job, atomically: true, encoding: .utf8)
    try FileManager.default.copyItem(
      at: images.appendingPathComponent("a.png"), to: images.appendingPathComponent("b.png"))
    XCTAssertThrowsError(try run(job)) { error in
      XCTAssertTrue(error.localizedDescription.contains("removed or reordered"), error.localizedDescription)
      XCTAssertTrue(
        error.localizedDescription.contains("add 'image_list: images.txt'"), error.localizedDescription)
    }
    // The way out the message gives: the stored order as an image list, the new image appended.
    let stored: [String] = try DatabaseQueue(path: dir.appendingPathComponent("results.db").path).read {
      try String.fetchAll($0, sql: "SELECT path FROM images ORDER BY id")
    }
    try (stored + ["b.png"]).joined(separator: "\n").write(
      to: dir.appendingPathComponent("images.txt"), atomically: true, encoding: .utf8)
    try String(contentsOf: job, encoding: .utf8).appending("image_list: images.txt\n").write(
      to: job, atomically: true, encoding: .utf8)
    let kept = try run(job)
    XCTAssertEqual(kept.processed, 1, "only the new image")
    XCTAssertEqual(kept.counts.done, 5)
  }

  /// With manifests, an everything job takes their images and none of their objects.
  func testManifestsListTheImagesOnly() throws {
    let (dir, job) = try everythingJob(
      "{points_per_side: 3, pred_iou_thresh: 0.5, stability_score_thresh: 0}",
      extra: "manifests: [{path: m.jsonl, format: jsonl}]\n")
    try #"{"image": "c.png", "objects": [{"box": [1, 1, 20, 20], "label": "car"}]}"#.write(
      to: dir.appendingPathComponent("m.jsonl"), atomically: true, encoding: .utf8)
    let summary = try run(job)
    XCTAssertEqual(summary.counts.done, 1)
    XCTAssertEqual(summary.counts.prompts, 1)
    let categories: [String?] = try DatabaseQueue(path: dir.appendingPathComponent("results.db").path).read {
      try Optional<String>.fetchAll($0, sql: "SELECT DISTINCT category FROM results")
    }
    XCTAssertEqual(categories, [nil])
  }
}
