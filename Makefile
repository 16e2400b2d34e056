# sambatch: `make test` sets up and runs every test; `make run` runs the main job.
SWIFT ?= swift
APT_PACKAGES := libopenblas-dev libjpeg-dev libpng-dev libsqlite3-dev sqlite3 pkg-config chromium
WEIGHTS_URL := https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt
WEIGHTS_BLOB := 7ef2d090979fd9853adf17b7a99c8b94a1c5a6a7
RELEASE := .build/release/sambatch
PYTHON ?= .venv-ref/bin/python

.PHONY: test deps build release lint format run weights bench

test: deps lint
	$(SWIFT) build --build-tests
	$(SWIFT) test

# Installs the system libraries with apt-get when any is missing (needs root, as on CI).
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

lint:
	$(SWIFT) format lint --strict --recursive Sources Tests Package.swift

format:
	$(SWIFT) format --in-place --recursive Sources Tests Package.swift

# The main job (Jobs/example.yaml), with the real weights: SAMBATCH_MODEL if set, else
# weights/mobile_sam.pt. It ends with a summary and a sqlite3 query to try.
run:
	@model="$${SAMBATCH_MODEL:-weights/mobile_sam.pt}"; \
	if [ ! -f "$$model" ]; then \
	  echo "No model: $$model does not exist. Run 'make weights' (downloads the official mobile_sam.pt)" \
	       "or set SAMBATCH_MODEL=/path/to/mobile_sam.pt."; exit 1; fi
	@$(MAKE) --no-print-directory release
	@# Jobs/example.yaml names weights/mobile_sam.pt; SAMBATCH_MODEL, when set, overrides it.
	@$(RELEASE) run Jobs/example.yaml; status=$$?; \
	[ $$status -eq 0 ] || [ $$status -eq 2 ] || exit $$status

# `make weights` fetches mobile_sam.pt (vit_t); `make weights MODEL=vit_b|vit_l|vit_h` the original
# SAM checkpoints from the segment-anything README's URLs, checked against their SHA-256 (the
# values that projects pinning these files publish, e.g. micro-sam's model registry).
MODEL ?= vit_t
SAM_URL := https://dl.fbaipublicfiles.com/segment_anything
SAM_FILE_vit_b := sam_vit_b_01ec64.pth
SAM_FILE_vit_l := sam_vit_l_0b3195.pth
SAM_FILE_vit_h := sam_vit_h_4b8939.pth
SAM_SHA256_vit_b := ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912
SAM_SHA256_vit_l := 3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622
SAM_SHA256_vit_h := a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e

weights:
	@mkdir -p weights
	@case "$(MODEL)" in vit_t|vit_b|vit_l|vit_h) ;; \
	  *) echo "MODEL=$(MODEL): expected vit_t (mobile_sam.pt), vit_b, vit_l or vit_h."; exit 1;; esac
ifeq ($(MODEL),vit_t)
	@if [ -f weights/mobile_sam.pt ] && [ "$$(git hash-object weights/mobile_sam.pt)" = "$(WEIGHTS_BLOB)" ]; then \
	  echo "weights/mobile_sam.pt is already here and checks out."; exit 0; fi; \
	if ! curl -fL --retry 2 -o weights/mobile_sam.pt.part "$(WEIGHTS_URL)"; then \
	  rm -f weights/mobile_sam.pt.part; \
	  echo "Could not download $(WEIGHTS_URL): no internet access from this machine?" \
	       "Copy mobile_sam.pt into weights/ by hand, or set SAMBATCH_MODEL."; exit 1; fi; \
	blob=$$(git hash-object weights/mobile_sam.pt.part); \
	if [ "$$blob" != "$(WEIGHTS_BLOB)" ]; then \
	  rm -f weights/mobile_sam.pt.part; \
	  echo "Downloaded file has git blob id $$blob, expected $(WEIGHTS_BLOB): not the official mobile_sam.pt."; exit 1; fi; \
	mv weights/mobile_sam.pt.part weights/mobile_sam.pt; echo "weights/mobile_sam.pt: OK ($$blob)"
else
	@file="weights/$(SAM_FILE_$(MODEL))"; want="$(SAM_SHA256_$(MODEL))"; \
	if [ -f "$$file" ] && [ "$$(sha256sum "$$file" | cut -d' ' -f1)" = "$$want" ]; then \
	  echo "$$file is already here and checks out."; exit 0; fi; \
	if ! curl -fL --retry 2 -o "$$file.part" "$(SAM_URL)/$(SAM_FILE_$(MODEL))"; then \
	  rm -f "$$file.part"; \
	  echo "Could not download $(SAM_URL)/$(SAM_FILE_$(MODEL)): no internet access from this machine?" \
	       "Copy $(SAM_FILE_$(MODEL)) into weights/ by hand, or set SAMBATCH_MODEL."; exit 1; fi; \
	got=$$(sha256sum "$$file.part" | cut -d' ' -f1); \
	if [ "$$got" != "$$want" ]; then \
	  rm -f "$$file.part"; \
	  echo "Downloaded file has SHA-256 $$got, expected $$want: not the official $(SAM_FILE_$(MODEL))."; exit 1; fi; \
	mv "$$file.part" "$$file"; echo "$$file: OK (SHA-256 $$got). Use it with SAMBATCH_MODEL=$$file."
endif

# One table from one run: sambatch's encode, one box (decode + masks at original size + RLE), the
# marginal box and GFLOP/s, beside PyTorch and ONNX Runtime on the same image (picture3 resized to
# 1920x1080), 2 threads, with the ratios and the targets. Needs the reference venv
# (Scripts/README.md; PYTHON=path/to/python to use another); the JSON goes to .build/bench.json.
bench: release
	@if [ ! -x "$(PYTHON)" ]; then \
	  echo "No $(PYTHON): create the reference venv (Scripts/README.md) or set PYTHON=/path/to/python."; \
	  exit 1; fi
	$(PYTHON) Scripts/bench_reference.py --sambatch $(RELEASE) --resize 1920x1080 --threads 2 --rounds 5 \
	  --table --json .build/bench.json
