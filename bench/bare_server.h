// The floors' servers: a minimal gRPC callback-API implementation of mgreg.v1.Registry
// that answers from memory, so a benchmark can compare the real server with the bare
// cost of gRPC for the same messages.
//  - ReadFile streams `size` bytes of the named file in 1 MiB FileChunk messages built
//    from an in-memory buffer (sizes given as name=size on the command line);
//  - GetLatestCheckpoint returns a fixed Checkpoint read from a file (the real
//    server's answer, so the response has the same size).
// Every other method is UNIMPLEMENTED.
#ifndef MGREG_BENCH_BARE_SERVER_H_
#define MGREG_BENCH_BARE_SERVER_H_

namespace mgreg::bench {

// Runs the bare server until SIGTERM. Arguments (after the mode flag):
//   --file NAME=SIZE   (repeatable) a file ReadFile serves
//   --latest PATH      a serialized v1::Checkpoint GetLatestCheckpoint returns
// Prints "bare server listening on 127.0.0.1:PORT" when ready. Returns the exit code.
int RunBareServer(int argc, char** argv);

// The main() of a benchmark that is also its own floor's server: RunBareServer with the
// arguments after `--bare-server` when that is the first argument, else `bench_main`.
int BareServerOrBenchmark(int argc, char** argv, int (*bench_main)(int, char**));

}  // namespace mgreg::bench

#endif  // MGREG_BENCH_BARE_SERVER_H_
