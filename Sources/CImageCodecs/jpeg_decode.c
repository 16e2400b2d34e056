// JPEG decoding with libjpeg(-turbo). Every libjpeg failure ends in sb_jpeg_fail, which longjmps
// back to sb_decode_jpeg instead of calling exit() as libjpeg's default handler does.

// jpeglib.h uses FILE and size_t without including their headers.
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "image_codecs.h"

typedef struct {
  struct jpeg_error_mgr base;  // first, so libjpeg's pointer to it is also a pointer to us
  jmp_buf escape;
  char *message;
  size_t capacity;
} sb_jpeg_errors;

static void sb_jpeg_fail(j_common_ptr cinfo) {
  sb_jpeg_errors *errors = (sb_jpeg_errors *)cinfo->err;
  char text[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, text);
  snprintf(errors->message, errors->capacity, "%s", text);
  longjmp(errors->escape, 1);
}

// Warnings (level -1) are silent except a premature end of data: libjpeg would pad the missing
// rows with gray and carry on, Pillow refuses such a file ("image file is truncated").
static void sb_jpeg_message(j_common_ptr cinfo, int level) {
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    sb_jpeg_fail(cinfo);
  }
}

static void sb_jpeg_silent(j_common_ptr cinfo) { (void)cinfo; }

// Pillow reads every 4-channel JPEG with Adobe polarity (stored = 255 - ink, its "CMYK;I" raw
// mode) and converts CMYK to RGB as r = nk - nk * c / 255 (rounded), nk = 255 - k.
static uint8_t sb_cmyk_channel(int inverted_ink, int inverted_black) {
  int ink = 255 - inverted_ink;
  int not_black = inverted_black;
  int t = ink * not_black + 128;
  int product = ((t >> 8) + t) >> 8;  // ink * not_black / 255, rounded
  int value = not_black - product;
  return (uint8_t)(value < 0 ? 0 : (value > 255 ? 255 : value));
}

static void sb_cmyk_row_to_rgb(const uint8_t *cmyk, uint8_t *rgb, int width) {
  for (int x = 0; x < width; x++) {
    rgb[0] = sb_cmyk_channel(cmyk[0], cmyk[3]);
    rgb[1] = sb_cmyk_channel(cmyk[1], cmyk[3]);
    rgb[2] = sb_cmyk_channel(cmyk[2], cmyk[3]);
    cmyk += 4;
    rgb += 3;
  }
}

sb_codec_status sb_decode_jpeg(const uint8_t *data, size_t size, int64_t max_pixels,
                               uint8_t *pixels, size_t capacity, sb_decoded_image *out) {
  struct jpeg_decompress_struct cinfo;
  sb_jpeg_errors errors;
  // Assigned after setjmp and read by the error path, hence volatile.
  uint8_t *volatile cmyk_row = NULL;

  memset(out, 0, sizeof *out);
  memset(&cinfo, 0, sizeof cinfo);
  cinfo.err = jpeg_std_error(&errors.base);
  errors.base.error_exit = sb_jpeg_fail;
  errors.base.emit_message = sb_jpeg_message;
  errors.base.output_message = sb_jpeg_silent;
  errors.message = out->message;
  errors.capacity = sizeof out->message;

  if (setjmp(errors.escape)) {
    jpeg_destroy_decompress(&cinfo);
    free(cmyk_row);
    return SB_CODEC_CORRUPT;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, (unsigned long)size);
  jpeg_read_header(&cinfo, TRUE);

  out->width = (int)cinfo.image_width;
  out->height = (int)cinfo.image_height;
  if ((int64_t)cinfo.image_width * (int64_t)cinfo.image_height > max_pixels) {
    snprintf(out->message, sizeof out->message, "the header claims %ux%u pixels",
             cinfo.image_width, cinfo.image_height);
    jpeg_destroy_decompress(&cinfo);
    return SB_CODEC_TOO_MANY_PIXELS;
  }
  if (pixels == NULL) {
    jpeg_destroy_decompress(&cinfo);
    return SB_CODEC_OK;
  }

  int is_cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  // Gray is replicated to RGB by libjpeg-turbo itself; YCCK is turned into CMYK by libjpeg.
  cinfo.out_color_space = is_cmyk ? JCS_CMYK : JCS_RGB;
  jpeg_start_decompress(&cinfo);

  int width = (int)cinfo.output_width;
  int height = (int)cinfo.output_height;
  size_t stride = (size_t)width * 3;
  if (cinfo.output_components != (is_cmyk ? 4 : 3) || stride * (size_t)height > capacity) {
    snprintf(out->message, sizeof out->message,
             "unexpected output: %d components, %dx%d pixels for a buffer of %zu bytes",
             cinfo.output_components, width, height, capacity);
    jpeg_destroy_decompress(&cinfo);
    return SB_CODEC_UNSUPPORTED;
  }
  if (is_cmyk) {
    cmyk_row = malloc((size_t)width * 4);
    if (cmyk_row == NULL) {
      snprintf(out->message, sizeof out->message, "cannot allocate a CMYK row of %d pixels", width);
      jpeg_destroy_decompress(&cinfo);
      return SB_CODEC_OUT_OF_MEMORY;
    }
  }

  while (cinfo.output_scanline < cinfo.output_height) {
    uint8_t *rgb = pixels + (size_t)cinfo.output_scanline * stride;
    JSAMPROW row = is_cmyk ? cmyk_row : rgb;
    if (jpeg_read_scanlines(&cinfo, &row, 1) != 1) {
      // Cannot happen with a memory source (it never suspends); guard against a busy loop.
      snprintf(out->message, sizeof out->message, "libjpeg returned no scanline");
      jpeg_destroy_decompress(&cinfo);
      free(cmyk_row);
      return SB_CODEC_CORRUPT;
    }
    if (is_cmyk) {
      sb_cmyk_row_to_rgb(cmyk_row, rgb, width);
    }
  }
  // No jpeg_finish_decompress: once every row is decoded, a missing EOI or trailing bytes do
  // not matter (Pillow and OpenCV accept such files too).
  jpeg_destroy_decompress(&cinfo);
  free(cmyk_row);
  out->width = width;
  out->height = height;
  return SB_CODEC_OK;
}
