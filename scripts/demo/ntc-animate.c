/*
 * The demo's visible workload: an animation on the console.  Every 100 ms it
 * draws frame N, a bouncing block and the guest's clock, so that a viewer
 * sees it keep moving during a checkpoint and, on the laptop, continue from
 * the frame the checkpoint caught.
 */
#include <stdio.h>
#include <time.h>

int main(void)
{
	const int width = 24;
	struct timespec delay = { 0, 100 * 1000000L };

	for (unsigned long frame = 1;; frame++) {
		char bar[32];
		int pos = (int)(frame % (2 * width - 2));
		struct timespec now;

		if (pos >= width)
			pos = 2 * width - 2 - pos;
		for (int i = 0; i < width; i++)
			bar[i] = i == pos ? '#' : '.';
		bar[width] = '\0';
		clock_gettime(CLOCK_REALTIME, &now);
		printf("FRAME %6lu [%s] %ld.%03ld\n", frame, bar, (long)now.tv_sec,
		       now.tv_nsec / 1000000);
		fflush(stdout);
		nanosleep(&delay, NULL);
	}
}
