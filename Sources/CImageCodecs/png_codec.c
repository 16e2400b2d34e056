// PNG decoding and gray PNG encoding with libpng's classic API. libpng reports errors through
// sb_png_fail, which longjmps to the setjmp in the calling function.

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "image_codecs.h"

typedef struct {
  char *message;
  size_t capacity;
} sb_png_errors;

static void sb_png_fail(png_structp png, png_const_charp text) {
  sb_png_errors *errors = (sb_png_errors *)png_get_error_ptr(png);
  snprintf(errors->message, errors->capacity, "%s", text);
  png_longjmp(png, 1);
}

// Warnings (a damaged ancillary chunk, an unknown sRGB profile, ...) do not stop decoding.
static void sb_png_warn(png_structp png, png_const_charp text) {
  (void)png;
  (void)text;
}

typedef struct {
  const uint8_t *data;
  size_t size;
  size_t position;
} sb_png_source;

static void sb_png_read(png_structp png, png_bytep destination, size_t length) {
  sb_png_source *source = (sb_png_source *)png_get_io_ptr(png);
  if (length > source->size - source->position) {
    png_error(png, "unexpected end of data (the file is truncated)");
  }
  memcpy(destination, source->data + source->position, length);
  source->position += length;
}

sb_codec_status sb_decode_png(const uint8_t *data, size_t size, int64_t max_pixels,
                              uint8_t *pixels, size_t capacity, sb_decoded_image *out) {
  memset(out, 0, sizeof *out);
  if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
    snprintf(out->message, sizeof out->message, "no PNG signature");
    return SB_CODEC_CORRUPT;
  }
  // The pixel limit is checked on the IHDR bytes before libpng sees the file: libpng reads every
  // chunk up to the first IDAT before it reports the size, and could fail on one of them first.
  static const uint8_t ihdr_tag[8] = {0, 0, 0, 13, 'I', 'H', 'D', 'R'};
  if (size >= 24 && memcmp(data + 8, ihdr_tag, 8) == 0) {
    uint32_t claimed_width = (uint32_t)data[16] << 24 | (uint32_t)data[17] << 16 |
                             (uint32_t)data[18] << 8 | data[19];
    uint32_t claimed_height = (uint32_t)data[20] << 24 | (uint32_t)data[21] << 16 |
                              (uint32_t)data[22] << 8 | data[23];
    if ((int64_t)claimed_width * (int64_t)claimed_height > max_pixels) {
      out->width = (int)(claimed_width > 0x7fffffffu ? 0x7fffffffu : claimed_width);
      out->height = (int)(claimed_height > 0x7fffffffu ? 0x7fffffffu : claimed_height);
      snprintf(out->message, sizeof out->message, "the header claims %ux%u pixels",
               claimed_width, claimed_height);
      return SB_CODEC_TOO_MANY_PIXELS;
    }
  }
  sb_png_errors errors = {out->message, sizeof out->message};
  sb_png_source source = {data, size, 0};
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &errors, sb_png_fail, sb_png_warn);
  if (png == NULL) {
    snprintf(out->message, sizeof out->message, "cannot create a libpng reader");
    return SB_CODEC_OUT_OF_MEMORY;
  }
  png_infop info = png_create_info_struct(png);
  if (info == NULL) {
    png_destroy_read_struct(&png, NULL, NULL);
    snprintf(out->message, sizeof out->message, "cannot create a libpng reader");
    return SB_CODEC_OUT_OF_MEMORY;
  }
  // Assigned after setjmp and read by the error path, hence volatile.
  png_bytep *volatile rows = NULL;
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    return SB_CODEC_CORRUPT;
  }
  png_set_read_fn(png, &source, sb_png_read);
  // Our own pixel limit applies instead of libpng's default of 1,000,000 per side.
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
  png_read_info(png, info);

  png_uint_32 width = 0, height = 0;
  int bit_depth = 0, color_type = 0;
  png_get_IHDR(png, info, &width, &height, &bit_depth, &color_type, NULL, NULL, NULL);
  out->width = (int)width;
  out->height = (int)height;
  if ((int64_t)width * (int64_t)height > max_pixels) {
    snprintf(out->message, sizeof out->message, "the header claims %ux%u pixels", width, height);
    png_destroy_read_struct(&png, &info, NULL);
    return SB_CODEC_TOO_MANY_PIXELS;
  }
  if (pixels == NULL) {
    png_destroy_read_struct(&png, &info, NULL);
    return SB_CODEC_OK;
  }

  // Explicit transforms, to get what Pillow's convert("RGB") gives for 8-bit files and what
  // OpenCV gives for 16-bit ones: no gamma, no background compositing, tRNS not expanded.
  if (color_type == PNG_COLOR_TYPE_PALETTE) {
    png_set_palette_to_rgb(png);
  }
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) {
    png_set_expand_gray_1_2_4_to_8(png);
  }
  if (bit_depth == 16) {
    png_set_strip_16(png);  // keeps the high byte, as OpenCV's imread does
  }
  png_set_strip_alpha(png);  // drops alpha (also any alpha a palette's tRNS would add)
  if (color_type == PNG_COLOR_TYPE_GRAY || color_type == PNG_COLOR_TYPE_GRAY_ALPHA) {
    png_set_gray_to_rgb(png);
  }
  png_set_interlace_handling(png);
  png_read_update_info(png, info);

  size_t stride = (size_t)width * 3;
  if (png_get_channels(png, info) != 3 || png_get_bit_depth(png, info) != 8 ||
      png_get_rowbytes(png, info) != stride || stride * (size_t)height > capacity) {
    snprintf(out->message, sizeof out->message,
             "libpng did not produce 8-bit RGB (color type %d, bit depth %d) for a buffer of %zu bytes",
             color_type, bit_depth, capacity);
    png_destroy_read_struct(&png, &info, NULL);
    return SB_CODEC_UNSUPPORTED;
  }
  rows = malloc(sizeof(png_bytep) * (size_t)height);
  if (rows == NULL) {
    snprintf(out->message, sizeof out->message, "cannot allocate %u row pointers", height);
    png_destroy_read_struct(&png, &info, NULL);
    return SB_CODEC_OUT_OF_MEMORY;
  }
  for (png_uint_32 y = 0; y < height; y++) {
    rows[y] = pixels + (size_t)y * stride;
  }
  png_read_image(png, rows);
  // No png_read_end: chunks after the image data (even a missing IEND) do not change pixels.
  png_destroy_read_struct(&png, &info, NULL);
  free(rows);
  return SB_CODEC_OK;
}

typedef struct {
  uint8_t *bytes;
  size_t size;
  size_t capacity;
} sb_png_sink;

static void sb_png_write(png_structp png, png_bytep source, size_t length) {
  sb_png_sink *sink = (sb_png_sink *)png_get_io_ptr(png);
  if (length > sink->capacity - sink->size) {
    size_t capacity = sink->capacity * 2 + length + 4096;
    uint8_t *grown = realloc(sink->bytes, capacity);
    if (grown == NULL) {
      png_error(png, "out of memory while encoding");
    }
    sink->bytes = grown;
    sink->capacity = capacity;
  }
  memcpy(sink->bytes + sink->size, source, length);
  sink->size += length;
}

static void sb_png_flush(png_structp png) { (void)png; }

static sb_codec_status sb_encode_png(const uint8_t *pixels, int width, int height, int channels,
                                     sb_encoded_file *out) {
  memset(out, 0, sizeof *out);
  if (width <= 0 || height <= 0) {
    snprintf(out->message, sizeof out->message, "cannot encode a %dx%d image", width, height);
    return SB_CODEC_UNSUPPORTED;
  }
  sb_png_errors errors = {out->message, sizeof out->message};
  // On the heap so that the error path sees what the write callback stored.
  sb_png_sink *sink = calloc(1, sizeof *sink);
  if (sink == NULL) {
    snprintf(out->message, sizeof out->message, "out of memory");
    return SB_CODEC_OUT_OF_MEMORY;
  }
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &errors, sb_png_fail, sb_png_warn);
  png_infop info = png == NULL ? NULL : png_create_info_struct(png);
  if (info == NULL) {
    png_destroy_write_struct(&png, NULL);
    free(sink);
    snprintf(out->message, sizeof out->message, "cannot create a libpng writer");
    return SB_CODEC_OUT_OF_MEMORY;
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    free(sink->bytes);
    free(sink);
    return SB_CODEC_CORRUPT;
  }
  png_set_write_fn(png, sink, sb_png_write, sb_png_flush);
  png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8,
               channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < height; y++) {
    png_write_row(png, pixels + (size_t)y * (size_t)width * (size_t)channels);
  }
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  out->bytes = sink->bytes;
  out->size = sink->size;
  free(sink);
  return SB_CODEC_OK;
}

sb_codec_status sb_encode_gray_png(
    const uint8_t *pixels, int width, int height, sb_encoded_file *out) {
  return sb_encode_png(pixels, width, height, 1, out);
}

sb_codec_status sb_encode_rgb_png(
    const uint8_t *pixels, int width, int height, sb_encoded_file *out) {
  return sb_encode_png(pixels, width, height, 3, out);
}
