/*
 * Guest workload: a TCP echo server for the network part of a checkpoint
 * test.  It listens on PORT, prints "ECHO-LISTENING <port>", accepts one
 * connection ("ECHO-CONNECTED"), and sends back every byte it receives, in
 * order, until the peer closes ("ECHO-DONE <bytes>") or the connection fails
 * ("ECHO-ERROR <what>"; exit status 1).  The client numbers its messages and
 * checks them; this side only has to keep the byte stream intact.
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

static int fail(const char *what)
{
	printf("ECHO-ERROR %s: %s\n", what, strerror(errno));
	return 1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY) };
	unsigned long long total = 0;
	char buf[4096];
	int one = 1, listener, conn;

	if (argc != 2) {
		fprintf(stderr, "usage: ntc-echo PORT\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	addr.sin_port = htons((unsigned short)atoi(argv[1]));
	listener = socket(AF_INET, SOCK_STREAM, 0);
	if (listener < 0)
		return fail("socket");
	setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(listener, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return fail("bind");
	if (listen(listener, 1) < 0)
		return fail("listen");
	printf("ECHO-LISTENING %s\n", argv[1]);
	do
		conn = accept(listener, NULL, NULL);
	while (conn < 0 && errno == EINTR);
	if (conn < 0)
		return fail("accept");
	close(listener);
	printf("ECHO-CONNECTED\n");
	for (;;) {
		ssize_t n = read(conn, buf, sizeof(buf)), done = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail("read");
		if (n == 0)
			break;
		while (done < n) {
			ssize_t w = write(conn, buf + done, n - done);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return fail("write");
			done += w;
		}
		total += n;
	}
	printf("ECHO-DONE %llu\n", total);
	return 0;
}
