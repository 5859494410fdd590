// Command haspd runs a hasp replica, or with --dev a whole five-replica cell
// in one process.
//
//	haspd --id r1 --dir DATA --listen 127.0.0.1:7001 --cell-name dev \
//	      --initial-cell r1=127.0.0.1:7001,r2=127.0.0.1:7002,...
//	haspd --dir DATA          # restart: the rest is stored in DATA
//	haspd --dev               # five replicas on 127.0.0.1:7001-7005
//
// It owns flags → master.Config → master.New → Run, and turns SIGINT and
// SIGTERM into a clean shutdown (a master hands leadership off first). Only
// flags given on the command line are passed on; the rest come from what the
// replica stored in its directory, else the defaults. See docs/operations.md.
package main
