/* jsonscan: raw JSON text checks. See jsonscan.h. */
#include "jsonscan.h"

bool json_has_escaped_nul(const char *text, size_t len)
{
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (!in_string) {
            in_string = c == '"';
            continue;
        }
        if (c == '"') {
            in_string = false;
        } else if (c == '\\' && i + 1 < len) {
            if (text[i + 1] == 'u' && i + 5 < len && text[i + 2] == '0' && text[i + 3] == '0' &&
                text[i + 4] == '0' && text[i + 5] == '0')
                return true;
            i++; /* skip the escaped character (a backslash, quote, u, ...) */
        }
    }
    return false;
}
