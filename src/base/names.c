/* names: the name rule. See names.h. */
#include "names.h"

#include <string.h>

bool name_char_ok(char c)
{
    /* Explicit ranges instead of isalnum(): locale-independent and ASCII only. */
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

bool name_valid(const char *s)
{
    if (!s)
        return false;
    size_t n = strnlen(s, NAME_MAX_LEN + 1);
    if (n == 0 || n > NAME_MAX_LEN || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!name_char_ok(s[i]))
            return false;
    return true;
}
