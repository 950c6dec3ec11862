/* PLACEHOLDER: replaced by the real CLI. */
#include "nerve.h"
#include <stdio.h>
int main(void) { printf("nerve %s\n", NERVE_VERSION); return 0; }
