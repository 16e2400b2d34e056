-- The sambatch result store (SQLite, WAL). Kept in sync with the named migrations in
-- Sources/SAMBatch/StoreSchema.swift: a test creates one database from this file and one through
-- the migrations and compares their sqlite_master. Apply by hand with: sqlite3 new.db < store.sql

-- migration "v1: jobs, runs, images, prompts, masks, manifest_problems, results view"

-- One row: what the database was written for. A run refuses a database whose model, manifests or
-- settings differ (and says which).
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
);

-- One row per invocation of `sambatch run` that had work to do.
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
);

-- One row per image of the job (of this shard). id is the image's position in the whole job, so
-- shard databases merge without renumbering; source_image_id is its id in a COCO manifest.
-- width/height are the decoded size after EXIF orientation (exif_applied). Timings in ms:
-- read_ms (read + decode + prompt preparation), embed_ms (image encoder), predict_ms (mask
-- decoder, post-processing, RLE) count only the image's own work; wait_ms (v2) the time it waited
-- for the model; total_ms (start of reading to end of predict, queue waits included).
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
);
CREATE INDEX images_by_status ON images(status);

-- One row per manifest object of a processed image, in manifest order. The box is the one used
-- (corners in pixels, after conversion and clipping); error is set for a rejected prompt.
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
) WITHOUT ROWID;

-- One row per stored mask. mask_index is the position in the reference's output (0 single-mask;
-- 0-2 multimask); score is the predicted IoU; stability_score is NULL where it is undefined;
-- bbox is pycocotools' toBbox; rle is the COCO compressed counts string (column-major).
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
) WITHOUT ROWID;

-- Manifest entries that could not be read at all (a malformed JSON Lines line, ...).
CREATE TABLE manifest_problems (
  id INTEGER PRIMARY KEY,
  file TEXT NOT NULL,
  line INTEGER,
  message TEXT NOT NULL
);

-- The stable interface: one row per stored mask.
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
JOIN images i ON i.id = m.image_id;


-- migration "v2: model kind, per-image wait, dropped detections and prompt fingerprints"

-- The model family: vit_t (MobileSAM), vit_b, vit_l, vit_h; "fake" for the test segmenter. NULL
-- in databases written before it was recorded.
ALTER TABLE jobs ADD COLUMN model_kind TEXT;
-- Size and modification time of every manifest file when the plan was last checked against them:
-- while they are the same, `status` and a finished rerun do not read the manifests again.
ALTER TABLE jobs ADD COLUMN manifest_stats TEXT;
-- Time (ms) the image waited for the model while other images used it: not part of embed_ms or
-- predict_ms, which count only the image's own work.
ALTER TABLE images ADD COLUMN wait_ms REAL;
-- The image's detections left out because their score is below prompts.min_score.
ALTER TABLE images ADD COLUMN below_min_score INTEGER NOT NULL DEFAULT 0;
-- A fingerprint of the image's prompts as planned: when a manifest grows or changes, only the
-- images whose prompts changed are redone.
ALTER TABLE images ADD COLUMN prompts_sha256 TEXT;
-- The process of a run (pid on host) and the last time it wrote: a second `sambatch run` of the
-- job refuses while that process lives, and takes over from one that is gone.
ALTER TABLE runs ADD COLUMN pid INTEGER;
ALTER TABLE runs ADD COLUMN heartbeat_at TEXT;
-- How the run ended: "finished", "interrupted (SIGINT)", "interrupted (SIGTERM)", or the error.
ALTER TABLE runs ADD COLUMN end_reason TEXT;

-- migration "v3: masks.gt_iou (sambatch eval), results view with gt_iou"

-- The IoU of each mask with its prompt's ground-truth segmentation, as pycocotools' maskUtils.iou
-- computes it (iscrowd kept); NULL where the prompt has none or `sambatch eval` has not run.
ALTER TABLE masks ADD COLUMN gt_iou REAL;

DROP VIEW results;
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
JOIN images i ON i.id = m.image_id;

-- migration "v4: masks' point and crop box (everything jobs), results view with them"

-- Everything jobs: the point that prompted the mask, in image pixels, and the crop it was found
-- in (x, y, width, height, as the reference's crop_box; the whole image without crop layers).
-- NULL for the masks of prompted jobs. An everything image has one prompt (index 0, no category,
-- box or points); its masks are numbered in the generator's order (mask_index).
ALTER TABLE masks ADD COLUMN point_x REAL;
ALTER TABLE masks ADD COLUMN point_y REAL;
ALTER TABLE masks ADD COLUMN crop_x INTEGER;
ALTER TABLE masks ADD COLUMN crop_y INTEGER;
ALTER TABLE masks ADD COLUMN crop_w INTEGER;
ALTER TABLE masks ADD COLUMN crop_h INTEGER;

DROP VIEW results;
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
JOIN images i ON i.id = m.image_id;
