/* Opens many connections to a ddm socket and holds them until its standard
 * input closes: one user trying to take every session.
 *
 *   flood SOCKET COUNT silent   connect, and never send a byte
 *   flood SOCKET COUNT hello    send a Hello on each and read the answer
 *
 * Prints "opened N" (silent) or "welcomed W of N" (hello), then waits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* ClientMessage { id: 1, hello: { version: 1 } }, framed. */
static const unsigned char hello[] = {0, 0, 0, 6, 0x08, 0x01, 0x12, 0x02, 0x08, 0x01};

/* True when the reply is a Welcome (a Reply with id 1), false for a refusal
 * (id 0) or no reply at all. */
static int welcomed(int fd) {
    unsigned char frame[256];
    size_t got = 0;
    while (got < 4) {
        ssize_t n = read(fd, frame + got, 4 - got);
        if (n <= 0)
            return 0;
        got += (size_t)n;
    }
    size_t len = ((size_t)frame[2] << 8) | frame[3];
    if (frame[0] || frame[1] || len < 4 || len > sizeof frame)
        return 0;
    got = 0;
    while (got < len) {
        ssize_t n = read(fd, frame + got, len - got);
        if (n <= 0)
            return 0;
        got += (size_t)n;
    }
    return frame[0] == 0x0a && frame[2] == 0x08 && frame[3] == 0x01;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: flood SOCKET COUNT silent|hello\n");
        return 2;
    }
    int count = atoi(argv[2]);
    int say_hello = strcmp(argv[3], "hello") == 0;
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    strncpy(address.sun_path, argv[1], sizeof address.sun_path - 1);
    int opened = 0, welcomes = 0;
    for (int i = 0; i < count; i++) {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
            perror("connect");
            return 1;
        }
        opened++;
        if (say_hello) {
            struct timeval patience = {.tv_sec = 5};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
            if (send(fd, hello, sizeof hello, MSG_NOSIGNAL) == (ssize_t)sizeof hello && welcomed(fd))
                welcomes++;
        }
    }
    if (say_hello)
        printf("welcomed %d of %d\n", welcomes, opened);
    else
        printf("opened %d\n", opened);
    fflush(stdout);
    char byte;
    while (read(0, &byte, 1) > 0) {
    }
    return 0;
}
