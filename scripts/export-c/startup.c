/* Minimal start-up for an exported model on an emulated Cortex-M4 (QEMU's mps2-an386):
 * the vector table, a reset handler that copies .data, zeroes .bss (the model's arena),
 * turns the FPU on and calls main(), and semihosting for printf and exit (newlib's
 * librdimon). */
#include <stdlib.h>

extern unsigned long _sidata, _sdata, _edata, _sbss, _ebss, _estack;
extern void initialise_monitor_handles(void);
int main(void);

void Reset_Handler(void);
void Default_Handler(void);

void Reset_Handler(void)
{
    unsigned long *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata)
        *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;)
        *dst++ = 0;
    /* CPACR: full access to coprocessors 10 and 11, the single-precision FPU */
    *(volatile unsigned long *)0xE000ED88 |= 0xFUL << 20;
    __asm volatile("dsb\n\tisb");
    initialise_monitor_handles();
    exit(main());
}

void Default_Handler(void)
{
    exit(3); /* a fault ends the run with a status the caller sees */
}

__attribute__((section(".isr_vector"), used)) void (*const vectors[16])(void) = {
    (void (*)(void))(&_estack), Reset_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, 0, 0, 0, 0, Default_Handler,
    Default_Handler, 0, Default_Handler, Default_Handler,
};
