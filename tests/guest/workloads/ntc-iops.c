/*
 * Guest workload: 4 KiB random I/O on a block device with O_DIRECT, DEPTH
 * requests in flight (one thread each, so each thread's request waits for
 * the device), for SECONDS.  Offsets are 4 KiB aligned over the whole
 * device, from a fixed seed per thread.
 *
 *   ntc-iops DEVICE read|write DEPTH SECONDS
 *   -> "IOPS <requests per second> requests=<n>"
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <linux/fs.h>
#include <time.h>
#include <unistd.h>

#define BLOCK 4096

static int fd, writing;
static unsigned long long blocks;
static struct timespec end;
static unsigned long done[256];

static int before_end(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec < end.tv_sec || (ts.tv_sec == end.tv_sec && ts.tv_nsec < end.tv_nsec);
}

static void *worker(void *arg)
{
	unsigned long index = (unsigned long)arg;
	unsigned long long state = 0x9e3779b97f4a7c15ull * (index + 1);
	void *buffer;

	if (posix_memalign(&buffer, BLOCK, BLOCK))
		return (void *)1;
	memset(buffer, (int)index, BLOCK);
	while (before_end()) {
		off_t offset;
		ssize_t n;

		state ^= state << 13;
		state ^= state >> 7;
		state ^= state << 17;
		offset = (off_t)(state % blocks) * BLOCK;
		n = writing ? pwrite(fd, buffer, BLOCK, offset) : pread(fd, buffer, BLOCK, offset);
		if (n != BLOCK)
			return (void *)1;
		done[index]++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned long depth, i, total = 0;
	unsigned long long bytes;
	pthread_t threads[256];
	double seconds;

	if (argc < 5 || (strcmp(argv[2], "read") && strcmp(argv[2], "write"))) {
		fprintf(stderr, "usage: ntc-iops DEVICE read|write DEPTH SECONDS\n");
		return 2;
	}
	writing = !strcmp(argv[2], "write");
	depth = strtoul(argv[3], NULL, 10);
	seconds = atof(argv[4]);
	if (depth < 1 || depth > 256) {
		fprintf(stderr, "ntc-iops: DEPTH must be 1..256\n");
		return 2;
	}
	fd = open(argv[1], (writing ? O_WRONLY : O_RDONLY) | O_DIRECT);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	if (ioctl(fd, BLKGETSIZE64, &bytes)) {
		struct stat st;

		if (fstat(fd, &st)) {
			perror(argv[1]);
			return 1;
		}
		bytes = st.st_size;
	}
	if (bytes < BLOCK) {
		fprintf(stderr, "ntc-iops: %s is smaller than one block\n", argv[1]);
		return 1;
	}
	blocks = bytes / BLOCK;
	clock_gettime(CLOCK_MONOTONIC, &end);
	end.tv_sec += (time_t)seconds;
	for (i = 0; i < depth; i++)
		if (pthread_create(&threads[i], NULL, worker, (void *)i)) {
			perror("pthread_create");
			return 1;
		}
	for (i = 0; i < depth; i++) {
		void *failed;

		pthread_join(threads[i], &failed);
		if (failed) {
			fprintf(stderr, "ntc-iops: I/O on %s failed\n", argv[1]);
			return 1;
		}
		total += done[i];
	}
	printf("IOPS %.0f requests=%lu\n", total / seconds, total);
	return 0;
}
