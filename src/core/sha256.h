#ifndef SHOPD_CORE_SHA256_H
#define SHOPD_CORE_SHA256_H

#include <stddef.h>

#define SHA256_LEN 32

/* out receives the SHA-256 digest of data. Thread-safe. */
void sha256(const void *data, size_t len, unsigned char out[SHA256_LEN]);

#endif
