/* The MPI transport of data-parallel training (docs/distributed.md). Compiled into the
 * nerve program, not into libnerve: with Open MPI's headers present (the Makefile asks
 * mpicc) it is MPI; without them, a stand-in that refuses a launch by mpirun. */
#ifndef NERVE_DIST_MPI_H
#define NERVE_DIST_MPI_H

#include "nerve.h"

/* When this process was started by mpirun with more than one rank (Open MPI's environment
 * says so), starts MPI and fills d (rank, size, the collectives) and returns 1; returns 0
 * for a process started alone (d->size 1, nothing started), or a negative status with a
 * message (a launch by mpirun of a nerve built without MPI among them). */
int nerve_mpi_start(nerve_dist *d);
/* Ends MPI after nerve_mpi_start returned 1: MPI_Finalize when rc is 0; otherwise
 * MPI_Abort(rc), which stops every rank at once (a rank that failed alone must not leave
 * the others waiting in a collective). Does nothing when MPI was not started. */
void nerve_mpi_finish(int rc);
/* 1 when this nerve was built with MPI. */
int nerve_mpi_built(void);

#endif
