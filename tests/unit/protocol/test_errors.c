/*
 * test_errors.c — rn_strerror()/rn_errname() cover runnel's codes and -errno alike.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "protocol/errors.h"

// runnel's own codes map to their message and name, whatever the sign.
Test(errors, own_codes_have_messages)
{
    cr_assert_str_eq(rn_strerror(-RN_E_OFFSET_OUT_OF_RANGE), "offset out of range");
    cr_assert_str_eq(rn_strerror(RN_E_OFFSET_OUT_OF_RANGE), "offset out of range");
    cr_assert_str_eq(rn_errname(-RN_E_BATCH_BAD_CRC), "BATCH_BAD_CRC");
    cr_assert(rn_is_rn_error(-RN_E_STORAGE_ERROR));
}

// System errors pass through as -errno and keep the libc description.
Test(errors, errno_passes_through)
{
    cr_assert_str_eq(rn_errname(-ENOSPC), "ENOSPC");
    cr_assert(strstr(rn_strerror(-ENOSPC), "space") != NULL);
    cr_assert_not(rn_is_rn_error(-ENOSPC));
    cr_assert_str_eq(rn_strerror(0), "success");
    cr_assert_str_eq(rn_errname(-999999), "UNKNOWN");
}
