#include "core/sha256.h"

#include <openssl/evp.h>

#include "core/err.h"

#include "core/banned.h"

void sha256(const void *data, size_t len, unsigned char out[SHA256_LEN])
{
    unsigned int out_len = 0;

    if (!EVP_Digest(data, len, out, &out_len, EVP_sha256(), NULL) || out_len != SHA256_LEN)
        BUG("EVP_Digest(sha256) failed");
}
