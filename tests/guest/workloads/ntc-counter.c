/*
 * Guest workload: a counter.  Every interval it increments a number and
 * appends "CNT <n> <unix-seconds>.<nanoseconds>" to a file on the data
 * partition, so a test can see that it ran on during a checkpoint, how long
 * it was stopped, and from which value a resumed guest continues.
 *
 * The same line goes to stdout (the console) on the first tick and whenever
 * the wall clock's second is another than at the last line printed.  A
 * resumed guest's wall clock has moved on by far more than a second since
 * its checkpoint (or back, if it is wrong), so its first tick is printed, and
 * a test sees from which value it goes on.  A line on
 * every tick would keep a vCPU busy under nested KVM, where each byte written
 * to the serial port costs an exit to the VMM (Documentation/testing.md).
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
	time_t printed = 0;
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
		if (n == 1 || ts.tv_sec != printed) {
			if (write(1, line, len) != len)
				return 1;
			printed = ts.tv_sec;
		}
		nanosleep(&delay, NULL);
	}
}
