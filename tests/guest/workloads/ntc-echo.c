/*
 * Guest workload: a TCP echo server for the network part of a checkpoint
 * test.  It listens on PORT, prints "ECHO-LISTENING <port>", and serves one
 * connection at a time ("ECHO-CONNECTED"), sending back every byte it
 * receives, in order, until the peer closes ("ECHO-DONE <bytes>") or the
 * connection fails ("ECHO-ERROR <what>"); then it waits for the next one.
 * It never exits by itself: the tests drive their guests from the console
 * shell, which, once the system has been frozen for a checkpoint, exits when
 * one of its background jobs ends, taking its session with it (Documentation/
 * kmod.md, "Busybox ash on the console").  The client numbers its messages
 * and checks them; this side only keeps the byte stream intact.
 *
 *   ntc-echo PORT
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void report(const char *what)
{
	printf("ECHO-ERROR %s: %s\n", what, strerror(errno));
}

/* Echoes one connection until the peer closes it or it fails. */
static void serve(int conn)
{
	unsigned long long total = 0;
	char buf[4096];

	for (;;) {
		ssize_t n = read(conn, buf, sizeof(buf)), done = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			report("read");
			return;
		}
		if (n == 0)
			break;
		while (done < n) {
			ssize_t w = write(conn, buf + done, n - done);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				report("write");
				return;
			}
			done += w;
		}
		total += n;
	}
	printf("ECHO-DONE %llu\n", total);
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
	int one = 1, port = argc == 2 ? atoi(argv[1]) : 0, listener;

	if (port < 1 || port > 65535) {
		fprintf(stderr, "usage: ntc-echo PORT (1-65535)\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	addr.sin_port = htons((unsigned short)port);
	listener = socket(AF_INET, SOCK_STREAM, 0);
	if (listener < 0 || setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(listener, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(listener, 1) < 0) {
		report("listen");
		return 1;
	}
	printf("ECHO-LISTENING %d\n", port);
	for (;;) {
		int conn = accept(listener, NULL, NULL);

		if (conn < 0 && errno == EINTR)
			continue;
		if (conn < 0) {
			report("accept");
			return 1;
		}
		printf("ECHO-CONNECTED\n");
		serve(conn);
		close(conn);
	}
}
