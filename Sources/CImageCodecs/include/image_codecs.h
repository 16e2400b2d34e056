#ifndef SAMBATCH_IMAGE_CODECS_H
#define SAMBATCH_IMAGE_CODECS_H
// Placeholder: JPEG and PNG decoding land here.
int sambatch_image_codecs_version(void);
#endif
