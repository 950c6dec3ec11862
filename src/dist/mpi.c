/* The MPI transport of data-parallel training: the collectives of a nerve_dist
 * (src/train/dist.c uses them) over MPI_COMM_WORLD, with errors returned rather than fatal
 * so that they reach the user as messages.
 *
 * Gradient buckets go out with MPI_Iallreduce as backward finishes them and are driven by
 * MPI_Testall between backward's nodes (Open MPI progresses a nonblocking collective only
 * inside MPI calls); the fit loop waits for them all before the optimiser step. Every rank
 * starts the same buckets in the same order, so Open MPI picks the same algorithm, with the
 * same reduction order, on every rank and in every run of the same shape: a run repeats
 * bit for bit, and every rank gets the same sums (the fit loop checks the ranks' weights
 * once per epoch and stops with an error if they ever differ).
 *
 * A rank that dies (killed, crashed) makes mpirun end the job: Open MPI's runtime sees the
 * process go and kills the others, reporting which rank died and how; a rank that fails
 * with an error calls MPI_Abort. Either way the last checkpoint on disk is whole (it is
 * written to a temporary file and renamed). */
#include "dist_mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Open MPI's launcher sets these in every rank's environment. */
static int launched_size(void)
{
    const char *v = getenv("OMPI_COMM_WORLD_SIZE");
    if (!v)
        v = getenv("PMIX_SIZE");
    return v ? atoi(v) : 0;
}

#ifdef NERVE_MPI
#include <mpi.h>

#define MAX_REQUESTS 4096

static struct {
    int started;
    MPI_Comm comm;
    MPI_Request req[MAX_REQUESTS];
    int n_req;
} M;

int nerve_mpi_built(void) { return 1; }

static int mpi_error(int code, const char *what)
{
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, s, &len) != MPI_SUCCESS)
        snprintf(s, sizeof s, "MPI error %d", code);
    return nerve_set_error(NERVE_ERR_IO, "MPI: %s failed: %s (another rank may have stopped)", what, s);
}

static int start_sum(void *user, float *buf, size_t n)
{
    (void)user;
    if (n > (size_t)2147483647 || M.n_req == MAX_REQUESTS)
        return nerve_set_error(NERVE_ERR_ARG, "MPI: a bucket of %zu floats, or more than %d buckets", n,
                               MAX_REQUESTS);
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, M.comm, &M.req[M.n_req]);
    if (rc != MPI_SUCCESS)
        return mpi_error(rc, "MPI_Iallreduce");
    M.n_req++;
    return NERVE_OK;
}

static int progress(void *user)
{
    (void)user;
    int flag = 0;
    int rc = M.n_req ? MPI_Testall(M.n_req, M.req, &flag, MPI_STATUSES_IGNORE) : MPI_SUCCESS;
    return rc == MPI_SUCCESS ? NERVE_OK : mpi_error(rc, "MPI_Testall");
}

static int wait_all(void *user)
{
    (void)user;
    int rc = M.n_req ? MPI_Waitall(M.n_req, M.req, MPI_STATUSES_IGNORE) : MPI_SUCCESS;
    M.n_req = 0;
    return rc == MPI_SUCCESS ? NERVE_OK : mpi_error(rc, "MPI_Waitall");
}

static int reduce(void *user, double *buf, int n, nerve_dist_op op)
{
    (void)user;
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_DOUBLE, op == NERVE_DIST_MAX ? MPI_MAX : MPI_SUM, M.comm);
    return rc == MPI_SUCCESS ? NERVE_OK : mpi_error(rc, "MPI_Allreduce");
}

int nerve_mpi_start(nerve_dist *d)
{
    memset(d, 0, sizeof *d);
    d->size = 1;
    if (launched_size() < 2)
        return 0;
    int provided = 0, rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (rc != MPI_SUCCESS)
        return nerve_set_error(NERVE_ERR_IO, "MPI_Init_thread failed (code %d)", rc);
    M.started = 1;
    if (provided < MPI_THREAD_FUNNELED)
        return nerve_set_error(NERVE_ERR_STATE, "MPI: this MPI library does not support threads "
                               "(MPI_THREAD_FUNNELED): nerve's thread pool needs it");
    if ((rc = MPI_Comm_dup(MPI_COMM_WORLD, &M.comm)) != MPI_SUCCESS)
        return mpi_error(rc, "MPI_Comm_dup");
    MPI_Comm_set_errhandler(M.comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(M.comm, &d->rank);
    MPI_Comm_size(M.comm, &d->size);
    d->start_sum = start_sum;
    d->progress = progress;
    d->wait_all = wait_all;
    d->reduce = reduce;
    const char *b = getenv("NERVE_BUCKET_FLOATS");
    if (b && atol(b) > 0)
        d->bucket_floats = (size_t)atol(b);
    return 1;
}

void nerve_mpi_finish(int rc)
{
    if (!M.started)
        return;
    M.started = 0;
    if (rc != 0) {
        fflush(stdout);
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
    MPI_Comm_free(&M.comm);
    MPI_Finalize();
}

#else /* built without MPI */

int nerve_mpi_built(void) { return 0; }

int nerve_mpi_start(nerve_dist *d)
{
    memset(d, 0, sizeof *d);
    d->size = 1;
    int n = launched_size();
    if (n > 1)
        return nerve_set_error(NERVE_ERR_ARG,
                               "started by mpirun as one of %d ranks, but this nerve was built without MPI: each "
                               "rank would train alone and all would write the same files; install "
                               "libopenmpi-dev (scripts/deps.sh) and rebuild", n);
    return 0;
}

void nerve_mpi_finish(int rc) { (void)rc; }

#endif
