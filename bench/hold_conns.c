/*
 * hold_conns PORT N SRC MODE (bench/connections.sh): opens N connections to 127.0.0.1:PORT
 * from address SRC and holds them until killed. MODE idle: nothing is sent. MODE trickle: one
 * byte of a request head on each connection every 2 s (a slow-loris client); a connection the
 * server closes is opened again. Prints "held N" once all are open.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

static int dial(int port, const char *src)
{
    struct sockaddr_in from = {.sin_family = AF_INET}, to = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    inet_pton(AF_INET, src, &from.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    to.sin_port = htons((uint16_t)port);
    if (fd < 0 || bind(fd, (struct sockaddr *)&from, sizeof(from)) ||
        connect(fd, (struct sockaddr *)&to, sizeof(to))) {
        perror("dial");
        exit(1);
    }
    return fd;
}

int main(int argc, char **argv)
{
    static const char head[] = "GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Slow: ";
    struct rlimit rl;

    if (argc != 5)
        return 2;
    int port = atoi(argv[1]), n = atoi(argv[2]);
    int trickle = !strcmp(argv[4], "trickle");
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    int *fds = calloc((size_t)n, sizeof(*fds));
    size_t *sent = calloc((size_t)n, sizeof(*sent));
    for (int i = 0; i < n; i++)
        fds[i] = dial(port, argv[3]);
    printf("held %d\n", n);
    fflush(stdout);
    for (;;) {
        sleep(2);
        if (!trickle)
            continue;
        for (int i = 0; i < n; i++) {
            char c = sent[i] < sizeof(head) - 1 ? head[sent[i]] : 'x';
            if (send(fds[i], &c, 1, MSG_NOSIGNAL) != 1) {
                close(fds[i]);
                fds[i] = dial(port, argv[3]);
                sent[i] = 0;
                continue;
            }
            sent[i]++;
        }
    }
}
