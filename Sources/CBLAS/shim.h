#include <cblas.h>
// Declared by OpenBLAS's cblas.h; named here so Swift sees them even from other cblas headers.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
