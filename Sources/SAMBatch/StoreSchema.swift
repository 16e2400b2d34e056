import GRDB

/// The store's schema as named, append-only migrations. Never edit a migration that has shipped:
/// add a new one, and mirror it in Schemas/store.sql (a test compares the two).
enum StoreSchema {
  static var migrator: DatabaseMigrator {
    var migrator = DatabaseMigrator()
    migrator.registerMigration("v1: jobs, runs, images, prompts, masks, manifest_problems, results view") {
      db in
      for statement in v1 { try db.execute(sql: statement) }
    }
    migrator.registerMigration("v2: model kind, per-image wait, dropped detections and prompt fingerprints") {
      db in
      for statement in v2 { try db.execute(sql: statement) }
    }
    migrator.registerMigration("v3: masks.gt_iou (sambatch eval), results view with gt_iou") { db in
      for statement in v3 { try db.execute(sql: statement) }
    }
    migrator.registerMigration("v4: masks' point and crop box (everything jobs), results view with them") {
      db in
      for statement in v4 { try db.execute(sql: statement) }
    }
    return migrator
  }

  static let v1: [String] = [
    """
    CREATE TABLE jobs (
      id INTEGER PRIMARY KEY CHECK (id = 1),
      job_file TEXT NOT NULL,
      model_path TEXT NOT NULL,
      model_sha256 TEXT NOT NULL,
      manifest_sha256 TEXT NOT NULL,
      settings TEXT NOT NULL,
      shard_index INTEGER NOT NULL,
      shard_count INTEGER NOT NULL,
      image_count INTEGER NOT NULL,
      created_at TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE runs (
      id INTEGER PRIMARY KEY,
      started_at TEXT NOT NULL,
      ended_at TEXT,
      host TEXT NOT NULL,
      version TEXT NOT NULL,
      workers INTEGER NOT NULL,
      model_path TEXT NOT NULL,
      images_done INTEGER NOT NULL DEFAULT 0,
      images_failed INTEGER NOT NULL DEFAULT 0
    )
    """,
    """
    CREATE TABLE images (
      id INTEGER PRIMARY KEY,
      path TEXT NOT NULL UNIQUE,
      source_image_id INTEGER,
      status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
      error TEXT,
      prompt_count INTEGER NOT NULL,
      width INTEGER,
      height INTEGER,
      exif_applied INTEGER,
      read_ms REAL,
      embed_ms REAL,
      predict_ms REAL,
      total_ms REAL,
      run_id INTEGER REFERENCES runs(id),
      finished_at TEXT
    )
    """,
    """
    CREATE INDEX images_by_status ON images(status)
    """,
    """
    CREATE TABLE prompts (
      image_id INTEGER NOT NULL REFERENCES images(id),
      prompt_index INTEGER NOT NULL,
      source_id TEXT,
      category_id INTEGER,
      category TEXT,
      detector_score REAL,
      box_x0 REAL,
      box_y0 REAL,
      box_x1 REAL,
      box_y1 REAL,
      points TEXT,
      warning TEXT,
      error TEXT,
      PRIMARY KEY (image_id, prompt_index)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE masks (
      image_id INTEGER NOT NULL,
      prompt_index INTEGER NOT NULL,
      mask_index INTEGER NOT NULL,
      score REAL NOT NULL,
      stability_score REAL,
      area INTEGER NOT NULL,
      bbox_x REAL NOT NULL,
      bbox_y REAL NOT NULL,
      bbox_w REAL NOT NULL,
      bbox_h REAL NOT NULL,
      rle TEXT NOT NULL,
      PRIMARY KEY (image_id, prompt_index, mask_index),
      FOREIGN KEY (image_id, prompt_index) REFERENCES prompts(image_id, prompt_index)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE manifest_problems (
      id INTEGER PRIMARY KEY,
      file TEXT NOT NULL,
      line INTEGER,
      message TEXT NOT NULL
    )
    """,
    """
    CREATE VIEW results AS
    SELECT
      i.path AS image,
      p.source_id AS source_id,
      COALESCE(p.category, CAST(p.category_id AS TEXT)) AS category,
      p.detector_score AS detector_score,
      m.mask_index AS mask_index,
      m.score AS score,
      m.stability_score AS stability_score,
      m.area AS area,
      m.bbox_x AS bbox_x,
      m.bbox_y AS bbox_y,
      m.bbox_w AS bbox_w,
      m.bbox_h AS bbox_h,
      i.width AS width,
      i.height AS height,
      m.rle AS rle,
      m.image_id AS image_id,
      m.prompt_index AS prompt_index
    FROM masks m
    JOIN prompts p ON p.image_id = m.image_id AND p.prompt_index = m.prompt_index
    JOIN images i ON i.id = m.image_id
    """,
  ]

  /// jobs.model_kind: the model family (vit_t, vit_b, vit_l, vit_h; "fake" for the test
  /// segmenter), NULL in databases written before it was recorded. jobs.manifest_stats: size and
  /// modification time of every manifest file when the plan was last checked against them. images.wait_ms: time the image
  /// waited for the model while other images used it (not part of embed_ms or predict_ms).
  /// images.below_min_score: the image's detections left out for a score below min_score.
  /// images.prompts_sha256: a fingerprint of the image's prompts as planned, so that a grown
  /// manifest redoes only the images whose prompts changed. runs.pid and runs.heartbeat_at: the
  /// process that runs (so that a second `run` of the job refuses while it lives, and takes over
  /// once it is gone); runs.end_reason: finished, interrupted by a signal, or the error that
  /// stopped it.
  static let v2: [String] = [
    "ALTER TABLE jobs ADD COLUMN model_kind TEXT",
    "ALTER TABLE jobs ADD COLUMN manifest_stats TEXT",
    "ALTER TABLE images ADD COLUMN wait_ms REAL",
    "ALTER TABLE images ADD COLUMN below_min_score INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE images ADD COLUMN prompts_sha256 TEXT",
    "ALTER TABLE runs ADD COLUMN pid INTEGER",
    "ALTER TABLE runs ADD COLUMN heartbeat_at TEXT",
    "ALTER TABLE runs ADD COLUMN end_reason TEXT",
  ]

  /// `sambatch eval`: the IoU of each mask with its prompt's ground-truth segmentation (NULL where
  /// there is none), in `masks` and at the end of the `results` view.
  static let v3: [String] = [
    "ALTER TABLE masks ADD COLUMN gt_iou REAL",
    "DROP VIEW results",
    """
    CREATE VIEW results AS
    SELECT
      i.path AS image,
      p.source_id AS source_id,
      COALESCE(p.category, CAST(p.category_id AS TEXT)) AS category,
      p.detector_score AS detector_score,
      m.mask_index AS mask_index,
      m.score AS score,
      m.stability_score AS stability_score,
      m.area AS area,
      m.bbox_x AS bbox_x,
      m.bbox_y AS bbox_y,
      m.bbox_w AS bbox_w,
      m.bbox_h AS bbox_h,
      i.width AS width,
      i.height AS height,
      m.rle AS rle,
      m.image_id AS image_id,
      m.prompt_index AS prompt_index,
      m.gt_iou AS gt_iou
    FROM masks m
    JOIN prompts p ON p.image_id = m.image_id AND p.prompt_index = m.prompt_index
    JOIN images i ON i.id = m.image_id
    """,
  ]

  /// Everything jobs: the point that prompted each mask and the crop it was found in (x, y, width,
  /// height, as the reference's `crop_box`), in image pixels; NULL for prompted masks. At the end of
  /// the `results` view, whose other columns keep their meaning (an everything mask's category is
  /// NULL).
  static let v4: [String] = [
    "ALTER TABLE masks ADD COLUMN point_x REAL",
    "ALTER TABLE masks ADD COLUMN point_y REAL",
    "ALTER TABLE masks ADD COLUMN crop_x INTEGER",
    "ALTER TABLE masks ADD COLUMN crop_y INTEGER",
    "ALTER TABLE masks ADD COLUMN crop_w INTEGER",
    "ALTER TABLE masks ADD COLUMN crop_h INTEGER",
    "DROP VIEW results",
    """
    CREATE VIEW results AS
    SELECT
      i.path AS image,
      p.source_id AS source_id,
      COALESCE(p.category, CAST(p.category_id AS TEXT)) AS category,
      p.detector_score AS detector_score,
      m.mask_index AS mask_index,
      m.score AS score,
      m.stability_score AS stability_score,
      m.area AS area,
      m.bbox_x AS bbox_x,
      m.bbox_y AS bbox_y,
      m.bbox_w AS bbox_w,
      m.bbox_h AS bbox_h,
      i.width AS width,
      i.height AS height,
      m.rle AS rle,
      m.image_id AS image_id,
      m.prompt_index AS prompt_index,
      m.gt_iou AS gt_iou,
      m.point_x AS point_x,
      m.point_y AS point_y,
      m.crop_x AS crop_x,
      m.crop_y AS crop_y,
      m.crop_w AS crop_w,
      m.crop_h AS crop_h
    FROM masks m
    JOIN prompts p ON p.image_id = m.image_id AND p.prompt_index = m.prompt_index
    JOIN images i ON i.id = m.image_id
    """,
  ]
}
