/**
 * `arc logs tail|query`: reading the access log (current file, rotated
 * files, .gz included) with filters; coloured columns on a terminal,
 * NDJSON when piped. Thread: main, as a command of its own.
 */
#ifndef ARC_OBS_LOGCLI_H
#define ARC_OBS_LOGCLI_H

/* argv[1] is "logs". default_config: the config file used to find
 * logging.output.file when neither --file nor -c is given (may be NULL).
 * Returns the exit status (0, 1 failure, 2 usage). */
int arc_logs_main(int argc, char **argv, const char *default_config);

#endif
