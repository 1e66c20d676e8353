/*
 * Guest workload: a timer loop.  Pinned to one CPU, it sleeps INTERVAL_MS at
 * a time for SECONDS and prints the largest time between two wake-ups, so a
 * benchmark can see how long that vCPU was kept from running (by a VMM
 * whose vCPU threads wait for device I/O, say).
 *
 *   ntc-timergap CPU SECONDS [INTERVAL_MS]
 *   -> "TIMERGAP max_ms=<largest gap> ticks=<wake-ups> interval_ms=<interval>"
 */
#include "pin_cpu.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	long interval_ms = argc > 3 ? atol(argv[3]) : 10;
	struct timespec delay = { interval_ms / 1000, (interval_ms % 1000) * 1000000L };
	double start, last, end, max_gap = 0;
	unsigned long ticks = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: ntc-timergap CPU SECONDS [INTERVAL_MS]\n");
		return 2;
	}
	if (pin_cpu(argv[1]))
		return 1;
	start = last = now_ms();
	end = start + atof(argv[2]) * 1e3;
	while (last < end) {
		double t;

		nanosleep(&delay, NULL);
		t = now_ms();
		if (t - last > max_gap)
			max_gap = t - last;
		last = t;
		ticks++;
	}
	printf("TIMERGAP max_ms=%.1f ticks=%lu interval_ms=%ld\n", max_gap, ticks, interval_ms);
	return 0;
}
