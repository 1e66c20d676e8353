/*
 * Guest workload: fills MIB of anonymous memory with a pattern that depends
 * on each page's index, so that memory pressure pushes much of it out to
 * swap; on SIGUSR1 it reads every page back and prints "HOG OK <pages>" or
 * "HOG BAD <first bad page>".  Used to show that pages swapped out on disk 1
 * at checkpoint time are intact after the resume from disk 2.
 *
 *   ntc-memhog MIB
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static volatile sig_atomic_t check;

static void on_usr1(int sig)
{
	(void)sig;
	check = 1;
}

static uint64_t word(size_t page, size_t k)
{
	return (page * 0x9e3779b97f4a7c15ull) ^ (k * 0xff51afd7ed558ccdull) ^ 0x4e5443;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 0) : 64;
	size_t pages = mib * 256, p, k;
	uint64_t *mem;

	mem = mmap(NULL, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	for (p = 0; p < pages; p++)
		for (k = 0; k < 512; k++)
			mem[p * 512 + k] = word(p, k);
	signal(SIGUSR1, on_usr1);
	printf("HOG READY %zu\n", pages);
	fflush(stdout);
	for (;;) {
		pause();
		if (!check)
			continue;
		check = 0;
		for (p = 0; p < pages; p++)
			for (k = 0; k < 512; k++)
				if (mem[p * 512 + k] != word(p, k))
					goto bad;
		printf("HOG OK %zu\n", pages);
		fflush(stdout);
		continue;
bad:
		printf("HOG BAD %zu\n", p);
		fflush(stdout);
	}
}
