/*
 * token_cmd: `dynserve token create|list|revoke` (see token_cmd.c). main.c dispatches to it when
 * argv[1] is "token".
 */
#ifndef DS_TOKEN_CMD_H
#define DS_TOKEN_CMD_H

/* argv[0] is "token". Returns the process exit code (0, 1 failed, 2 bad command line). */
int token_cmd_main(int argc, char **argv);

#endif
