#include <stdlib.h>

#include "image_codecs.h"

void sb_codec_free(void *pointer) { free(pointer); }
