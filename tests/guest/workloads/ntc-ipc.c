/*
 * Guest workload: SysV IPC objects whose identity and content must survive a
 * checkpoint and resume.
 *
 *   ntc-ipc hold    creates a semaphore set (key NTC_KEY, 4 semaphores with
 *                   values 7 13 42 99) and a 256 KiB shared memory segment
 *                   filled with a known pattern, prints their ids, and stays
 *                   attached forever
 *   ntc-ipc check   prints "IPCCHECK semid=.. shmid=.. sems=a,b,c,d shm=ok|bad"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ipc.h>
#include <sys/sem.h>
#include <sys/shm.h>

#define NTC_KEY 0x4e5443
#define NSEMS 4
#define SHM_BYTES (256 * 1024)

union semun { int val; struct semid_ds *buf; unsigned short *array; };

static unsigned char pattern(size_t i)
{
	return (unsigned char)((i * 31 + 7) ^ (i >> 12));
}

int main(int argc, char **argv)
{
	unsigned short vals[NSEMS] = { 7, 13, 42, 99 };
	union semun arg;
	unsigned char *shm;
	int semid, shmid;
	size_t i;

	if (argc > 1 && !strcmp(argv[1], "hold")) {
		semid = semget(NTC_KEY, NSEMS, IPC_CREAT | IPC_EXCL | 0600);
		shmid = shmget(NTC_KEY, SHM_BYTES, IPC_CREAT | IPC_EXCL | 0600);
		if (semid < 0 || shmid < 0) {
			perror("ipc create");
			return 1;
		}
		arg.array = vals;
		if (semctl(semid, 0, SETALL, arg) < 0) {
			perror("semctl");
			return 1;
		}
		shm = shmat(shmid, NULL, 0);
		if (shm == (void *)-1) {
			perror("shmat");
			return 1;
		}
		for (i = 0; i < SHM_BYTES; i++)
			shm[i] = pattern(i);
		printf("IPCHOLD semid=%d shmid=%d\n", semid, shmid);
		fflush(stdout);
		for (;;)
			pause();
	}
	if (argc > 1 && !strcmp(argv[1], "check")) {
		unsigned short got[NSEMS];
		int ok = 1;

		semid = semget(NTC_KEY, 0, 0);
		shmid = shmget(NTC_KEY, 0, 0);
		if (semid < 0 || shmid < 0) {
			printf("IPCCHECK missing\n");
			return 1;
		}
		arg.array = got;
		if (semctl(semid, 0, GETALL, arg) < 0)
			return 1;
		shm = shmat(shmid, NULL, SHM_RDONLY);
		if (shm == (void *)-1)
			return 1;
		for (i = 0; i < SHM_BYTES; i++)
			if (shm[i] != pattern(i))
				ok = 0;
		printf("IPCCHECK semid=%d shmid=%d sems=%u,%u,%u,%u shm=%s\n", semid, shmid,
		       got[0], got[1], got[2], got[3], ok ? "ok" : "bad");
		return 0;
	}
	fprintf(stderr, "usage: ntc-ipc hold|check\n");
	return 2;
}
