#include "image_codecs.h"
int sambatch_image_codecs_version(void) { return 1; }
