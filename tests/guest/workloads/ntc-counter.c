/*
 * Guest workload: a counter.  Every interval it increments a number and
 * writes "CNT <n> <unix-seconds>.<nanoseconds>" to stdout (the console) and
 * appends the same line to a file on the data partition, so a test can see
 * that it ran on during a checkpoint, how long it was stopped, and from which
 * value a resumed guest continues.
 *
 *   ntc-counter FILE [INTERVAL_MS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

int main(int argc, char **argv)
{
	long interval_ms = argc > 2 ? atol(argv[2]) : 50;
	struct timespec ts, delay = { interval_ms / 1000, (interval_ms % 1000) * 1000000L };
	unsigned long n = 0;
	char line[96];
	int fd;

	if (argc < 2) {
		fprintf(stderr, "usage: ntc-counter FILE [INTERVAL_MS]\n");
		return 2;
	}
	fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	for (;;) {
		int len;

		n++;
		clock_gettime(CLOCK_REALTIME, &ts);
		len = snprintf(line, sizeof(line), "CNT %lu %ld.%09ld\n", n, (long)ts.tv_sec, ts.tv_nsec);
		if (write(fd, line, len) != len)
			return 1;
		if (write(1, line, len) != len)
			return 1;
		nanosleep(&delay, NULL);
	}
}
