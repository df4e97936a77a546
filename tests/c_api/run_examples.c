/* Runs the example producer (creating a fresh queue) and then the example
 * consumer, and checks the consumer took exactly the jobs produced.
 *   run_examples PRODUCER CONSUMER */
#include <currant.h>

#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

static int run(char* const argv[]) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execv(argv[0], argv);
        perror("execv");
        _exit(127);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

int main(int argc, char** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s PRODUCER CONSUMER\n", argv[0]);
        return 2;
    }
    char name[64];
    snprintf(name, sizeof name, "cex%d", (int)getpid());
    currant_queue_remove(name);

    char* producer[] = {argv[1], "--create", name, "work", "100", NULL};
    char* consumer[] = {argv[2], name, "work", "300", "100", NULL};
    const int produced = run(producer);
    const int consumed = produced == 0 ? run(consumer) : -1;
    currant_queue_remove(name);
    const int ok = produced == 0 && consumed == 0;
    printf("%s examples: producer exit %d, consumer exit %d\n", ok ? "ok  " : "FAIL", produced, consumed);
    printf("c_api examples: %d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
    return ok ? 0 : 1;
}
