// Package tf deploys Tungsten Fabric on a site and keeps its BGP peering in line
// with the sites that exist: it renders TF's Kubernetes manifest from typed
// k8s.io/api objects and talks to TF's VNC config API.
package tf

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/tfsite/tfsite/agent/kube"
)

// Namespace is where TF's components run (as in TF's own manifests).
const Namespace = "kube-system"

// Node labels. VrouterLabel=VrouterEnabled selects nodes that run the vrouter
// agent (which takes over the NIC): recovery removes the label to get a node's
// NIC back. Controller components run on nodes labelled ControllerLabel.
const (
	VrouterLabel    = "tfsite.io/vrouter"
	VrouterEnabled  = "enabled"
	ControllerLabel = "node-role.opencontrail.org/controller"
	SiteLabel       = "tfsite.io/site"
	ManagedByLabel  = "app.kubernetes.io/managed-by"
)

// Defaults TF uses when unset (tf-container-builder common.sh), kept explicit.
const (
	BGPPort          = 179
	ZookeeperPort    = 2181
	RabbitMQNodePort = 5673
)

// Manifest returns TF's objects for the site in apply order: RBAC, ConfigMaps,
// then the DaemonSets. p is validated first; the underlay gateway must not be a
// controller/master address (the seed's lock-out).
func Manifest(p kube.SiteParams) ([]runtime.Object, error) {
	p = p.WithDefaults()
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("rendering TF manifest: %w", err)
	}
	m := manifest{p: p}
	objs := []runtime.Object{}
	objs = append(objs, m.rbac()...)
	objs = append(objs, m.configMaps()...)
	objs = append(objs, m.daemonSets()...)
	return objs, nil
}

// Render returns the manifest as one YAML stream (tf.yaml).
func Render(p kube.SiteParams) ([]byte, error) {
	objs, err := Manifest(p)
	if err != nil {
		return nil, err
	}
	return kube.EncodeYAML("# Tungsten Fabric for site "+p.Site+", rendered by tfsite from the site's allocation.\n", objs)
}

type manifest struct{ p kube.SiteParams }

func (m manifest) labels(app string) map[string]string {
	l := map[string]string{ManagedByLabel: "tfsite", SiteLabel: m.p.Site}
	if app != "" {
		l["app"] = app
	}
	return l
}

func (m manifest) meta(name, app string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: Namespace, Labels: m.labels(app)}
}

func joinAddrs(as []netip.Addr) string {
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

// EnvData is the `env` ConfigMap every TF container loads. The vrouter agent
// loads only `env` (and configzookeeperenv), so the pod subnets must be here too.
func EnvData(p kube.SiteParams) map[string]string {
	ctrl := joinAddrs(p.ControllerNodes)
	return map[string]string{
		"AAA_MODE":                        "no-auth",
		"AUTH_MODE":                       "noauth",
		"CLOUD_ORCHESTRATOR":              "kubernetes",
		"CONTROLLER_NODES":                ctrl,
		"CONTROL_NODES":                   ctrl,
		"CONFIG_NODES":                    ctrl,
		"CONFIGDB_NODES":                  ctrl,
		"ZOOKEEPER_NODES":                 ctrl,
		"RABBITMQ_NODES":                  ctrl,
		"RABBITMQ_NODE_PORT":              strconv.Itoa(RabbitMQNodePort),
		"ANALYTICSDB_ENABLE":              "false",
		"ANALYTICS_ALARM_ENABLE":          "false",
		"ANALYTICS_SNMP_ENABLE":           "false",
		"PHYSICAL_INTERFACE":              p.PhysicalInterface,
		"VROUTER_GATEWAY":                 p.Gateway.String(),
		"BGP_ASN":                         strconv.FormatUint(uint64(p.ASN), 10),
		"BGP_PORT":                        strconv.Itoa(BGPPort),
		"ENABLE_4BYTE_AS":                 strconv.FormatBool(p.ASN > 65535),
		"KUBERNETES_CLUSTER_NAME":         p.Site,
		"KUBERNETES_POD_SUBNETS":          p.Pod.String(),
		"KUBERNETES_SERVICE_SUBNETS":      p.Service.String(),
		"KUBERNETES_IP_FABRIC_SUBNETS":    p.Fabric.String(),
		"KUBERNETES_IP_FABRIC_FORWARDING": "true",
		"LOG_LEVEL":                       "SYS_NOTICE",
	}
}

// KubeManagerData is `kube-manager-config`: without these TF's kube-manager
// ignores kubeadm's CIDRs and uses its own defaults (10.32/12, 10.96/12, 10.64/12).
func KubeManagerData(p kube.SiteParams) map[string]string {
	return map[string]string{
		"KUBERNETES_API_SERVER":        p.AdvertiseAddress.String(),
		"KUBERNETES_API_SECURE_PORT":   strconv.Itoa(int(p.APIServerPort)),
		"K8S_TOKEN_FILE":               "/tmp/serviceaccount/token",
		"KUBERNETES_CLUSTER_NAME":      p.Site,
		"KUBERNETES_POD_SUBNETS":       p.Pod.String(),
		"KUBERNETES_SERVICE_SUBNETS":   p.Service.String(),
		"KUBERNETES_IP_FABRIC_SUBNETS": p.Fabric.String(),
	}
}

func (m manifest) configMaps() []runtime.Object {
	p := m.p
	cm := func(name string, data map[string]string) runtime.Object {
		return &corev1.ConfigMap{ObjectMeta: m.meta(name, ""), Data: data}
	}
	ctrl := joinAddrs(p.ControllerNodes)
	// The Erlang cookie only has to agree among the site's RabbitMQ nodes; derive
	// it from the site so re-rendering is stable (and sites differ).
	sum := sha256.Sum256([]byte("tfsite-rabbitmq:" + p.Site))
	return []runtime.Object{
		cm("env", EnvData(p)),
		cm("defaults-env", map[string]string{}),
		cm("configzookeeperenv", map[string]string{
			"ZOOKEEPER_NODES": ctrl, "ZOOKEEPER_PORT": strconv.Itoa(ZookeeperPort), "ZOOKEEPER_PORTS": "2888:3888",
		}),
		cm("nodemgr-config", map[string]string{"DOCKER_HOST": "unix://mnt/docker.sock"}),
		cm("contrail-configdb-config", map[string]string{
			"CASSANDRA_SEEDS": ctrl, "CASSANDRA_CLUSTER_NAME": "ContrailConfigDB", "CASSANDRA_START_RPC": "true",
			"CASSANDRA_LISTEN_ADDRESS": "auto", "CASSANDRA_PORT": "9161", "CASSANDRA_CQL_PORT": "9041",
			"CASSANDRA_SSL_STORAGE_PORT": "7011", "CASSANDRA_STORAGE_PORT": "7010", "CASSANDRA_JMX_LOCAL_PORT": "7201",
			"JVM_EXTRA_OPTS": "-Xms1g -Xmx2g",
		}),
		cm("rabbitmq-config", map[string]string{"RABBITMQ_ERLANG_COOKIE": hex.EncodeToString(sum[:16])}),
		cm("kube-manager-config", KubeManagerData(p)),
	}
}

const kubeManagerName = "contrail-kube-manager"

func (m manifest) rbac() []runtime.Object {
	read := []string{"get", "list", "watch"}
	write := []string{"get", "list", "watch", "update", "patch"}
	return []runtime.Object{
		&corev1.ServiceAccount{ObjectMeta: m.meta(kubeManagerName, kubeManagerName)},
		// A long-lived token for K8S_TOKEN_FILE, which kube-manager and the
		// vrouter agent read from a mounted Secret (not a projected token).
		&corev1.Secret{
			ObjectMeta: func() metav1.ObjectMeta {
				o := m.meta(kubeManagerName+"-token", kubeManagerName)
				o.Annotations = map[string]string{corev1.ServiceAccountNameKey: kubeManagerName}
				return o
			}(),
			Type: corev1.SecretTypeServiceAccountToken,
		},
		&rbacv1.ClusterRole{
			ObjectMeta: metav1.ObjectMeta{Name: kubeManagerName, Labels: m.labels(kubeManagerName)},
			Rules: []rbacv1.PolicyRule{
				// kube-manager mirrors every namespace, pod, service, endpoint,
				// ingress and network policy into TF's config.
				{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: read},
				// It annotates pods and namespaces and writes load-balancer status.
				{APIGroups: []string{""}, Resources: []string{"pods", "namespaces", "services", "services/status", "endpoints"}, Verbs: write},
				{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"ingresses", "ingresses/status"}, Verbs: write},
			},
		},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: kubeManagerName, Labels: m.labels(kubeManagerName)},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: kubeManagerName},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: kubeManagerName, Namespace: Namespace}},
		},
	}
}

// Image returns the full reference of a TF image.
func Image(p kube.SiteParams, name string) string {
	return p.TFRegistry + "/" + name + ":" + p.TFTag
}

func envFrom(names ...string) []corev1.EnvFromSource {
	out := make([]corev1.EnvFromSource, len(names))
	for i, n := range names {
		out[i] = corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: n}}}
	}
	return out
}

func mount(name, path string) corev1.VolumeMount {
	return corev1.VolumeMount{Name: name, MountPath: path}
}

func hostPath(name, path string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path}}}
}

func privileged() *corev1.SecurityContext {
	t := true
	return &corev1.SecurityContext{Privileged: &t}
}

// container builds one TF container: image, env ConfigMaps, NODE_TYPE, log mount.
func (m manifest) container(name, image, nodeType string, cms []string, mounts ...corev1.VolumeMount) corev1.Container {
	c := corev1.Container{
		Name:            name,
		Image:           Image(m.p, image),
		ImagePullPolicy: corev1.PullIfNotPresent,
		EnvFrom:         envFrom(cms...),
		VolumeMounts:    append([]corev1.VolumeMount{mount("contrail-logs", "/var/log/contrail")}, mounts...),
	}
	if nodeType != "" {
		c.Env = []corev1.EnvVar{{Name: "NODE_TYPE", Value: nodeType}}
	}
	return c
}

func (m manifest) nodeInit() corev1.Container {
	c := m.container("contrail-node-init", "contrail-node-init", "", []string{"env"}, mount("host-usr-bin", "/host/usr/bin"))
	c.Env = []corev1.EnvVar{{Name: "CONTRAIL_STATUS_IMAGE", Value: Image(m.p, "contrail-status")}}
	c.SecurityContext = privileged()
	return c
}

// nodemgrAndProvisioner are the two sidecars every TF role runs: nodemgr reports
// status and re-runs provisioning (with BGP_ASN) at every start.
func (m manifest) nodemgrAndProvisioner(nodeType string, extra ...string) []corev1.Container {
	nm := m.container("contrail-"+nodeType+"-nodemgr", "contrail-nodemgr", nodeType,
		append(append([]string{"env"}, extra...), "nodemgr-config"), mount("docker-unix-socket", "/mnt"))
	pr := m.container("contrail-"+nodeType+"-provisioner", "contrail-provisioner", nodeType,
		append(append([]string{"env", "defaults-env"}, extra...), "nodemgr-config"))
	return []corev1.Container{nm, pr}
}

var controlPlaneTolerations = []corev1.Toleration{
	{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: "node.kubernetes.io/not-ready", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
}

func (m manifest) daemonSet(name string, selector map[string]string, spec corev1.PodSpec) *appsv1.DaemonSet {
	spec.HostNetwork = true
	spec.NodeSelector = selector
	spec.Tolerations = controlPlaneTolerations
	spec.Volumes = append([]corev1.Volume{hostPath("contrail-logs", "/var/log/contrail")}, spec.Volumes...)
	return &appsv1.DaemonSet{
		ObjectMeta: m.meta(name, name),
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: m.labels(name)},
				Spec:       spec,
			},
		},
	}
}

func (m manifest) daemonSets() []runtime.Object {
	ctrl := map[string]string{ControllerLabel: ""}
	// nodeSelector needs a value; controller nodes are labelled with "" (kubeadm-style role label).
	usrBin := hostPath("host-usr-bin", "/usr/bin")
	dockerSock := hostPath("docker-unix-socket", "/var/run")
	zk := m.daemonSet("config-zookeeper", ctrl, corev1.PodSpec{
		Containers: []corev1.Container{m.container("config-zookeeper", "contrail-external-zookeeper", "config-database",
			[]string{"env", "configzookeeperenv"}, mount("zookeeper-data", "/var/lib/zookeeper"))},
		Volumes: []corev1.Volume{hostPath("zookeeper-data", "/var/lib/contrail/config-zookeeper")},
	})
	configdb := m.daemonSet("contrail-configdb", ctrl, corev1.PodSpec{
		Containers: append([]corev1.Container{m.container("contrail-configdb", "contrail-external-cassandra", "config-database",
			[]string{"contrail-configdb-config"}, mount("configdb-data", "/var/lib/cassandra"))},
			m.nodemgrAndProvisioner("config-database", "contrail-configdb-config")...),
		Volumes: []corev1.Volume{hostPath("configdb-data", "/var/lib/contrail/configdb"), dockerSock},
	})
	rabbit := m.daemonSet("rabbitmq", ctrl, corev1.PodSpec{
		Containers: []corev1.Container{m.container("rabbitmq", "contrail-external-rabbitmq", "config-database",
			[]string{"env", "rabbitmq-config"}, mount("rabbitmq-data", "/var/lib/rabbitmq"))},
		Volumes: []corev1.Volume{hostPath("rabbitmq-data", "/var/lib/contrail/rabbitmq")},
	})
	cfgEnv := []string{"env", "configzookeeperenv"}
	config := m.daemonSet("contrail-controller-config", ctrl, corev1.PodSpec{
		InitContainers: []corev1.Container{m.nodeInit()},
		Containers: append([]corev1.Container{
			m.container("contrail-controller-config-api", "contrail-controller-config-api", "", cfgEnv),
			m.container("contrail-controller-config-schema", "contrail-controller-config-schema", "", cfgEnv),
			m.container("contrail-controller-config-svcmonitor", "contrail-controller-config-svcmonitor", "", cfgEnv),
		}, m.nodemgrAndProvisioner("config", "configzookeeperenv")...),
		Volumes: []corev1.Volume{dockerSock, usrBin},
	})
	dnsCfg := mount("dns-config", "/etc/contrail")
	named := m.container("contrail-controller-control-named", "contrail-controller-control-named", "", []string{"env"}, dnsCfg)
	named.SecurityContext = privileged()
	control := m.daemonSet("contrail-controller-control", ctrl, corev1.PodSpec{
		InitContainers: []corev1.Container{m.nodeInit()},
		Containers: append([]corev1.Container{
			m.container("contrail-controller-control", "contrail-controller-control-control", "", []string{"env"}),
			m.container("contrail-controller-control-dns", "contrail-controller-control-dns", "", []string{"env"}, dnsCfg),
			named,
		}, m.nodemgrAndProvisioner("control", "configzookeeperenv")...),
		Volumes: []corev1.Volume{dockerSock, usrBin,
			{Name: "dns-config", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
	})
	noToken := false
	secret := corev1.Volume{Name: "pod-secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: kubeManagerName + "-token"}}}
	km := m.daemonSet(kubeManagerName, ctrl, corev1.PodSpec{
		ServiceAccountName:           kubeManagerName,
		AutomountServiceAccountToken: &noToken,
		InitContainers:               []corev1.Container{m.nodeInit()},
		Containers: []corev1.Container{m.container(kubeManagerName, "contrail-kubernetes-kube-manager", "",
			[]string{"env", "kube-manager-config"}, mount("pod-secret", "/tmp/serviceaccount"))},
		Volumes: []corev1.Volume{secret, usrBin},
	})
	agent := m.container("contrail-vrouter-agent", "contrail-vrouter-agent", "", []string{"env"},
		mount("dev", "/dev"), mount("host-bin", "/host/bin"), mount("usr-src", "/usr/src"),
		mount("lib-modules", "/lib/modules"), mount("var-lib-contrail", "/var/lib/contrail"),
		mount("var-crashes", "/var/crashes"), mount("pod-secret", "/tmp/serviceaccount"))
	agent.SecurityContext = privileged()
	agent.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"/clean-up.sh"}}}}
	kernelInit := m.container("contrail-vrouter-kernel-init", "contrail-vrouter-kernel-init", "", []string{"env"},
		mount("usr-src", "/usr/src"), mount("lib-modules", "/lib/modules"), mount("host-bin", "/host/bin"))
	kernelInit.SecurityContext = privileged()
	cniInit := m.container("contrail-kubernetes-cni-init", "contrail-kubernetes-cni-init", "", []string{"env"},
		mount("var-lib-contrail", "/var/lib/contrail"), mount("etc-cni", "/host/etc_cni"),
		mount("opt-cni-bin", "/host/opt_cni_bin"), mount("var-log-contrail-cni", "/host/log_cni"))
	vrouter := m.daemonSet("contrail-agent", map[string]string{VrouterLabel: VrouterEnabled}, corev1.PodSpec{
		ServiceAccountName:           kubeManagerName,
		AutomountServiceAccountToken: &noToken,
		InitContainers:               []corev1.Container{m.nodeInit(), kernelInit, cniInit},
		Containers:                   append([]corev1.Container{agent}, m.nodemgrAndProvisioner("vrouter")...),
		Volumes: []corev1.Volume{
			hostPath("dev", "/dev"), hostPath("host-bin", "/bin"), dockerSock, secret,
			hostPath("usr-src", "/usr/src"), hostPath("lib-modules", "/lib/modules"),
			hostPath("var-lib-contrail", "/var/lib/contrail"), hostPath("var-crashes", "/var/contrail/crashes"),
			hostPath("etc-cni", "/etc/cni"), hostPath("opt-cni-bin", "/opt/cni/bin"),
			hostPath("var-log-contrail-cni", "/var/log/contrail/cni"), usrBin,
		},
	})
	return []runtime.Object{zk, configdb, rabbit, config, control, km, vrouter}
}
