# Appliance image targets (issue 6). Host tools: sudo hack/image-deps.sh (mkosi 24.3 pinned, qemu, OVMF,
# mtools, xorriso). Outputs and caches live in mkosi.output/, mkosi.cache/ and .cache/ (gitignored).
.PHONY: image-deps image boot boot-kernel test-image test-two-vm bench-image image-clean

image-deps: ## install the image build/boot tools (mkosi 24.3 from bookworm-backports, qemu, OVMF, ...)
	hack/image-deps.sh

IMAGE_FORMATS ?= raw qcow2 iso
export IMAGE_FORMATS

image: build kube-bins ## build the appliance image (with the control-plane images): mkosi.output/tfsite.{raw,qcow2,iso} (IMAGE_FORMATS="raw qcow2 iso")
	hack/image-build.sh

boot: ## boot the image under qemu, serial console here (Ctrl-a x quits; TFSITE_SEED=seed.img attaches a NoCloud seed)
	hack/boot.sh $(BOOT_IMAGE)

boot-kernel: ## boot the image by direct kernel boot (TFSITE_CMDLINE="tfsite.site=a tfsite.voters=a")
	hack/boot.sh --kernel

# The boot tests that apply to the formats built: the ISO's four boot paths only when it is built.
# TestUpdateRollsBack runs last (go test runs them in file order): it builds versions 1.0-1.2 itself
# and leaves tfsite.raw at 1.0, without the control-plane images.
BOOT_TESTS = TestBootImage|TestBringUpImage$(if $(filter iso,$(IMAGE_FORMATS)),|TestBootISO)|TestUpdateRollsBack

test-image: image ## build the image, boot it under qemu and assert on the serial console (CI: raw disk + the ISO's 4 boot paths + the A/B update cycle)
	TFSITE_IMAGE_TEST=1 $(GO) test -count=1 -v -timeout 60m -run '$(BOOT_TESTS)' ./image/

test-two-vm: image ## as root: two VMs on one dnsmasq network join through kernel-command-line seeds, distinct ASNs/prefixes
	GO=$(GO) hack/two-vm.sh

bench-image: ## image numbers: warm rebuild, sizes, boot to agent ready under TCG (BENCH_BOOTS=3)
	hack/bench-image.sh

image-clean: ## remove image outputs and mkosi's caches (the next build is cold)
	rm -rf mkosi.output mkosi.cache mkosi.builddir .cache/image-stage
