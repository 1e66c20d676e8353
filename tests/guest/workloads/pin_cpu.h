/* Shared by the workloads that must run on one given vCPU. */
#ifndef NTC_WORKLOAD_PIN_CPU_H
#define NTC_WORKLOAD_PIN_CPU_H

#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

/* Moves the calling process to CPU number `cpu` (text); 0 on success. */
static inline int pin_cpu(const char *cpu)
{
	cpu_set_t cpus;

	CPU_ZERO(&cpus);
	CPU_SET(atoi(cpu), &cpus);
	if (sched_setaffinity(0, sizeof(cpus), &cpus)) {
		perror("sched_setaffinity");
		return -1;
	}
	return 0;
}

#endif
