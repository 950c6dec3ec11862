/* Errors as values: each thread keeps its last status and message. */
#include "nerve.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char last_message[4096]; /* room for a section's whole list of keys */
static _Thread_local int last_status;

const char *nerve_last_error(void) { return last_message; }
int nerve_last_status(void) { return last_status; }

void nerve_clear_error(void)
{
    last_message[0] = '\0';
    last_status = NERVE_OK;
}

int nerve_set_error(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    last_status = status;
    return status;
}
