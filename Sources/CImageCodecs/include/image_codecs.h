#ifndef SAMBATCH_IMAGE_CODECS_H
#define SAMBATCH_IMAGE_CODECS_H

// JPEG and PNG decoding to 8-bit interleaved RGB; PNG (gray or RGB) and JPEG (RGB) encoding.
// libjpeg and libpng report fatal errors by longjmp, which Swift cannot do, so the whole
// decode lives here in C; every failure comes back as a status code and a message.

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  SB_CODEC_OK = 0,
  /// The data is damaged or truncated; `message` holds libjpeg's or libpng's text.
  SB_CODEC_CORRUPT = 1,
  /// The header claims more than `max_pixels` pixels; `width`/`height` hold the claim.
  SB_CODEC_TOO_MANY_PIXELS = 2,
  /// The pixel buffer could not be allocated.
  SB_CODEC_OUT_OF_MEMORY = 3,
  /// A valid file of a kind we do not decode (e.g. a JPEG colour space we cannot map).
  SB_CODEC_UNSUPPORTED = 4,
} sb_codec_status;

typedef struct {
  int width;
  int height;
  /// NUL-terminated description of the failure when the status is not SB_CODEC_OK.
  char message[200];
} sb_decoded_image;

// Both decoders work in two calls, so that the caller owns the pixel memory:
// - `pixels == NULL`: read the header only; on success `out` holds the size. The pixel limit is
//   checked here too, before anything is allocated.
// - `pixels != NULL`: decode `width * height * 3` bytes of interleaved RGB into `pixels`;
//   `capacity` must be at least that (else SB_CODEC_UNSUPPORTED).

/// Decodes a JPEG (baseline, progressive, arithmetic; grayscale, YCbCr, RGB, CMYK, YCCK).
/// Grayscale is replicated to RGB; CMYK/YCCK is converted as Pillow's `convert("RGB")` does
/// (Adobe polarity). libjpeg's "premature end of JPEG file" warning is an error.
sb_codec_status sb_decode_jpeg(const uint8_t *data, size_t size, int64_t max_pixels,
                               uint8_t *pixels, size_t capacity, sb_decoded_image *out);

/// Decodes a PNG: palette and gray expanded to RGB, tRNS ignored, alpha dropped without
/// compositing, 16-bit samples reduced to their high byte, interlacing undone.
sb_codec_status sb_decode_png(const uint8_t *data, size_t size, int64_t max_pixels,
                              uint8_t *pixels, size_t capacity, sb_decoded_image *out);

typedef struct {
  /// The encoded file, allocated with malloc; release with `sb_codec_free`.
  uint8_t *bytes;
  size_t size;
  char message[200];
} sb_encoded_file;

/// Encodes `width * height` 8-bit gray samples (rows top to bottom) as a PNG in memory.
sb_codec_status sb_encode_gray_png(
    const uint8_t *pixels, int width, int height, sb_encoded_file *out);

/// Encodes `width * height` pixels of interleaved 8-bit RGB as a PNG in memory.
sb_codec_status sb_encode_rgb_png(
    const uint8_t *pixels, int width, int height, sb_encoded_file *out);

/// Encodes `width * height` pixels of interleaved 8-bit RGB as a baseline JPEG (4:2:0, libjpeg's
/// defaults) at `quality` (1-100), in memory.
sb_codec_status sb_encode_jpeg(const uint8_t *pixels, int width, int height, int quality,
                               sb_encoded_file *out);

void sb_codec_free(void *pointer);

#ifdef __cplusplus
}
#endif

#endif
