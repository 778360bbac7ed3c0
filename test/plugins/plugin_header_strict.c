/*
 * Compiles the public plugin header alone under strict flags (-std=c99 -pedantic -Werror; see
 * CMakeLists.txt), the way a plugin author's build would meet it: it must be self-contained and
 * warning-free. Nothing else is included on purpose.
 */
#include <dynserve/plugin.h>

int plugin_header_strict_abi_major(void);

int plugin_header_strict_abi_major(void)
{
    ds_error err = {DS_OK, {0}};
    ds_error_set(&err, DS_ERR_INTERNAL, "%s %d", DS_PLUGIN_ENTRY_SYMBOL, DS_MAX_RANK);
    return DS_PLUGIN_ABI_MAJOR + (int)err.code;
}
