# vflag — see README.md. Everything that needs root (the testbed, the
# privileged tests) is run as root; `make setup` installs what is missing.

SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
RESULTS := $(CURDIR)/results
export PATH := $(BIN):/usr/local/go/bin:$(PATH)

GOLANGCI_LINT_VERSION := v2.15.0
GOFUMPT_VERSION := v0.12.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2

# The tiers that may skip elsewhere must run here: a skip fails.
TEST_ENV := VFLAG_REQUIRE_PRIVILEGED=1 VFLAG_REQUIRE_TESTBED=1 VFLAG_BIN_DIR=$(BIN)

.PHONY: help setup tools generate build lint test test-libvirt-pull unit e2e demo demo-libvirt bench clean
.PHONY: deb
.DEFAULT_GOAL := help

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  \033[1m%-8s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## install host packages (QEMU with igb from backports, busybox, ...), Go modules and pinned tools
	@bash testenv/setup-host.sh
	@echo "[setup] go mod download"; $(GO) mod download
	@$(MAKE) --no-print-directory tools

tools: $(BIN)/golangci-lint $(BIN)/gofumpt $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc

$(BIN)/protoc-gen-go:
	@GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)

$(BIN)/protoc-gen-go-grpc:
	@GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

$(BIN)/golangci-lint:
	@echo "[setup] building golangci-lint $(GOLANGCI_LINT_VERSION) into bin/ (takes a few minutes once)"
	@GOBIN=$(BIN) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

$(BIN)/gofumpt:
	@echo "[setup] building gofumpt $(GOFUMPT_VERSION) into bin/"
	@GOBIN=$(BIN) $(GO) install mvdan.cc/gofumpt@$(GOFUMPT_VERSION)

BACKENDS := generic ice mlx5

# vflagd uses cgo for libvirt.org/go/libvirt, with libvirt.so.0 loaded at run
# time (libvirt_dlopen): it runs on hosts without libvirt and needs only libc.
build: ## build the binaries into bin/ (static but vflagd: the testbed guest gets them too), each NIC backend with its .sha256
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -o $(BIN)/ $$($(GO) list ./cmd/... | grep -v '/cmd/vflagd$$')
	CGO_ENABLED=1 $(GO) build -tags libvirt_dlopen -o $(BIN)/ ./cmd/vflagd
	@cd $(BIN) && for b in $(BACKENDS); do sha256sum vflag-backend-$$b > vflag-backend-$$b.sha256; done

deb: build ## the Debian package bin/vflag_<version>_<arch>.deb from bin/ (apt install ./bin/vflag_*.deb)
	$(GO) run ./packaging/cmd/mkdeb -bin $(BIN) -out $(BIN)

# The checked-in generated code; make lint fails when regenerating changes it.
GENERATED := api/vflagpb/vflag.pb.go api/vflagpb/vflag_grpc.pb.go plugin/backendpb/backend.pb.go plugin/backendpb/backend_grpc.pb.go

generate: tools ## regenerate the checked-in protobuf code
	protoc -I api/vflagpb --go_out=api/vflagpb --go_opt=paths=source_relative \
		--go-grpc_out=api/vflagpb --go-grpc_opt=paths=source_relative api/vflagpb/vflag.proto
	protoc -I plugin/backendpb --go_out=plugin/backendpb --go_opt=paths=source_relative \
		--go-grpc_out=plugin/backendpb --go-grpc_opt=paths=source_relative plugin/backendpb/backend.proto

lint: tools ## gofumpt, go vet, golangci-lint, go mod tidy and generated-code checks
	@out=$$($(BIN)/gofumpt -l $$(git ls-files '*.go' ':!:*.pb.go')); if [ -n "$$out" ]; then echo "gofumpt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/golangci-lint run ./...
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run go mod tidy"; $(GO) mod tidy -diff; exit 1; }
	@before=$$(sha256sum $(GENERATED)); $(MAKE) --no-print-directory generate >/dev/null; after=$$(sha256sum $(GENERATED)); \
		[ "$$before" = "$$after" ] || { echo "generated code differs from its .proto: run make generate"; diff <(echo "$$before") <(echo "$$after"); exit 1; }

test: setup build lint ## everything: lint, unit, privileged and testbed tiers (as root)
	@mkdir -p $(RESULTS)/artifacts
	$(TEST_ENV) $(GO) test -count=1 -p 1 -timeout 40m -artifacts -outputdir $(RESULTS)/artifacts ./...

unit: ## the unit tier only (no root needed; privileged and testbed tests skip)
	$(GO) test -count=1 -race -short ./...

e2e: setup build ## the testbed tier only
	@mkdir -p $(RESULTS)/artifacts
	$(TEST_ENV) $(GO) test -count=1 -p 1 -timeout 20m -artifacts -outputdir $(RESULTS)/artifacts -v \
		-run 'TestTestbed|TestInterrupted|TestCablePull|TestVflagdOnIgb|TestBalanceOnIgb|TestRDMAPull|TestBackendsOnIgb|TestDoctorInTestbed|TestLibvirt|TestHookUnderLibvirt' ./testenv/... ./vfmgr/... ./firmware/... ./doctor/... ./hooks/...

test-libvirt-pull: setup build ## only the L2 guests' cable pull and migration under real libvirt (about 25 min; part of make test)
	@mkdir -p $(RESULTS)/artifacts
	$(TEST_ENV) $(GO) test -count=1 -timeout 40m -artifacts -outputdir $(RESULTS)/artifacts -v \
		-run 'TestLibvirtPull$$' ./testenv/scenario/

demo: setup build ## the main job: boot the testbed, pull a cable, print and save the timelines
	$(BIN)/vflag-testbed demo --results $(RESULTS)

demo-libvirt: setup build ## the demo, then L2 guests under real libvirt through a pull and a migration (about 25 min more)
	$(BIN)/vflag-testbed demo --libvirt --results $(RESULTS)

bench: build ## benchmarks (as root: some send on veths); results in results/bench.json and results/bench.txt
	@mkdir -p $(RESULTS)
	$(TEST_ENV) $(GO) test -run '^$$' -bench . -benchmem -json ./... > $(RESULTS)/bench.json
	@$(GO) run ./testenv/benchreport < $(RESULTS)/bench.json | tee $(RESULTS)/bench.txt

clean: ## stop leftover testbeds and remove bin/
	-$(BIN)/vflag-testbed down 2>/dev/null
	rm -rf $(BIN)
