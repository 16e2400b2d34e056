// JPEG encoding with libjpeg(-turbo), into memory, for the overlay images. As in jpeg_decode.c,
// libjpeg's fatal errors longjmp back here instead of calling exit().

// jpeglib.h uses FILE and size_t without including their headers.
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>

#include "image_codecs.h"

typedef struct {
  struct jpeg_error_mgr base;  // first, so libjpeg's pointer to it is also a pointer to us
  jmp_buf escape;
  char *message;
  size_t capacity;
} sb_jpeg_encode_errors;

static void sb_jpeg_encode_fail(j_common_ptr cinfo) {
  sb_jpeg_encode_errors *errors = (sb_jpeg_encode_errors *)cinfo->err;
  char text[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, text);
  snprintf(errors->message, errors->capacity, "%s", text);
  longjmp(errors->escape, 1);
}

static void sb_jpeg_encode_silent(j_common_ptr cinfo, int level) {
  (void)cinfo;
  (void)level;
}

sb_codec_status sb_encode_jpeg(const uint8_t *pixels, int width, int height, int quality,
                               sb_encoded_file *out) {
  memset(out, 0, sizeof *out);
  if (width <= 0 || height <= 0 || width > 65500 || height > 65500) {
    snprintf(out->message, sizeof out->message, "cannot encode a %dx%d image as JPEG", width,
             height);
    return SB_CODEC_UNSUPPORTED;
  }
  struct jpeg_compress_struct cinfo;
  sb_jpeg_encode_errors errors;
  cinfo.err = jpeg_std_error(&errors.base);
  errors.base.error_exit = sb_jpeg_encode_fail;
  errors.base.emit_message = sb_jpeg_encode_silent;
  errors.message = out->message;
  errors.capacity = sizeof out->message;
  // Written by libjpeg's memory destination; volatile because it is read after a longjmp.
  unsigned char *volatile buffer = NULL;
  unsigned long size = 0;
  if (setjmp(errors.escape)) {
    jpeg_destroy_compress(&cinfo);
    free(buffer);
    return SB_CODEC_CORRUPT;
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, (unsigned char **)&buffer, &size);
  cinfo.image_width = (JDIMENSION)width;
  cinfo.image_height = (JDIMENSION)height;
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = (JSAMPROW)(pixels + (size_t)cinfo.next_scanline * (size_t)width * 3);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  out->bytes = buffer;
  out->size = size;
  return SB_CODEC_OK;
}
