package netguard

func defaultKernel() (Kernel, Prober) { return Netlink{}, NetProber{} }
