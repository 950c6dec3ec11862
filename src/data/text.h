/* Text files as bytes (internal: the cfg builder, the text data setup and text generation
 * read them). */
#ifndef NERVE_DATA_TEXT_H
#define NERVE_DATA_TEXT_H

#include "nerve.h"

/* The whole file into *bytes (caller frees with nerve_xfree) and its length into *len.
 * Errors name the file: NERVE_ERR_IO when it cannot be read, NERVE_ERR_FORMAT when it is
 * empty or larger than 2 GiB. */
int text_read_file(const char *path, unsigned char **bytes, size_t *len);

#endif
