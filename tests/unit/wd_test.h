/* Include this instead of <cmocka.h>: cmocka 1.1.5 needs these first. */
#ifndef WD_TEST_H
#define WD_TEST_H
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#endif
