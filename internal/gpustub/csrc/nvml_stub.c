/*
 * A stand-in for libnvidia-ml.so.1 (NVML), for tests of gptoss' hardware
 * detection on machines without an NVIDIA driver. It exports the NVML entry
 * points gptoss calls, with NVML's public signatures and error codes, and
 * answers with the devices of one scenario, chosen at compile time with
 * -DSCENARIO_<NAME> (see internal/gpustub). Like NVML it refuses device
 * queries before nvmlInit_v2, checks buffer sizes and handles, and counts
 * nvmlInit_v2/nvmlShutdown pairs (gpustub_nvml_init_count reports the count,
 * so tests can check that the caller shut NVML down).
 *
 * Written for gptoss from the NVML API reference; it is not NVIDIA code.
 */
#include <stddef.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))
#define MIB (1024ULL * 1024ULL)

typedef int nvmlReturn_t;

enum {
	NVML_SUCCESS = 0,
	NVML_ERROR_UNINITIALIZED = 1,
	NVML_ERROR_INVALID_ARGUMENT = 2,
	NVML_ERROR_NOT_SUPPORTED = 3,
	NVML_ERROR_NOT_FOUND = 6,
	NVML_ERROR_INSUFFICIENT_SIZE = 7,
	NVML_ERROR_DRIVER_NOT_LOADED = 9,
	NVML_ERROR_GPU_IS_LOST = 15,
	NVML_ERROR_UNKNOWN = 999,
};

typedef struct {
	unsigned long long total;
	unsigned long long free;
	unsigned long long used;
} nvmlMemory_t;

#define MAX_MIG 7

struct stub_device {
	const char *name;
	const char *uuid;
	nvmlReturn_t uuid_err; /* nonzero: nvmlDeviceGetUUID fails with it */
	int major, minor;
	unsigned long long total_mib, used_mib;
	unsigned int max_gen, cur_gen, width; /* 0: PCIe queries not supported */
	int mig_capable, mig_mode;
	struct stub_device *mig[MAX_MIG]; /* MIG slices by index; NULL: empty slot */
	int is_mig;
};

typedef struct stub_device *nvmlDevice_t;

/* The devices: physical GPUs in nvml order, each entry NULL when its handle
 * cannot be had (handle_err). */

#define H100                                                                    \
	{                                                                           \
		.name = "NVIDIA H100 80GB HBM3",                                        \
		.uuid = "GPU-3f4b1a52-6c1e-5e1d-9b53-2a0d5d3c7e01", .major = 9,        \
		.minor = 0, .total_mib = 81559, .used_mib = 479, .max_gen = 5,          \
		.cur_gen = 1 /* an idle link trains down */, .width = 16,              \
	}

#define RTX4090                                                                 \
	{                                                                           \
		.name = "NVIDIA GeForce RTX 4090",                                      \
		.uuid = "GPU-8a61f0c4-2e9b-7d3f-1c55-90ab4e6d2f17", .major = 8,        \
		.minor = 9, .total_mib = 24564, .used_mib = 367, .max_gen = 4,          \
		.cur_gen = 4, .width = 16,                                              \
	}

#if defined(SCENARIO_H100) || defined(SCENARIO_NOLIBCUDA) || defined(SCENARIO_FAILING)
#define DRIVER "550.54.15"
static struct stub_device dev0 = H100;
static struct stub_device *devices[] = {&dev0};
static nvmlReturn_t handle_err[] = {0};

#elif defined(SCENARIO_RTX4090)
#define DRIVER "550.54.15"
static struct stub_device dev0 = RTX4090;
static struct stub_device *devices[] = {&dev0};
static nvmlReturn_t handle_err[] = {0};

#elif defined(SCENARIO_MIXED)
#define DRIVER "550.54.15"
static struct stub_device dev0 = H100;
static struct stub_device dev1 = RTX4090;
static struct stub_device *devices[] = {&dev0, &dev1};
static nvmlReturn_t handle_err[] = {0, 0};

#elif defined(SCENARIO_MIG)
#define DRIVER "535.154.05"
static struct stub_device slice0 = {
	.name = "NVIDIA A100-SXM4-80GB MIG 1g.10gb",
	.uuid = "MIG-5c89b1e2-7d40-5a3b-8f21-6e0c9d4a1b37",
	.major = 8,
	.minor = 0,
	.total_mib = 9728,
	.used_mib = 13,
	.is_mig = 1,
};
static struct stub_device dev0 = {
	.name = "NVIDIA A100-SXM4-80GB",
	.uuid = "GPU-b2d7e9a0-41c6-3f8e-a5d2-7c1e0f9b6a48",
	.major = 8,
	.minor = 0,
	.total_mib = 81920,
	.used_mib = 9741,
	.max_gen = 4,
	.cur_gen = 4,
	.width = 16,
	.mig_capable = 1,
	.mig_mode = 1,
	.mig = {NULL, NULL, NULL, &slice0}, /* slots 0-2 empty, as after destroying slices */
};
static struct stub_device *devices[] = {&dev0};
static nvmlReturn_t handle_err[] = {0};

#elif defined(SCENARIO_PASCAL)
#define DRIVER "535.154.05"
static struct stub_device dev0 = {
	.name = "NVIDIA GeForce GTX 1080 Ti",
	.uuid = "GPU-0c3e5a71-9f28-4b6d-8e14-d5a2c7b90f63",
	.major = 6,
	.minor = 1,
	.total_mib = 11264,
	.used_mib = 171,
	.max_gen = 3,
	.cur_gen = 3,
	.width = 16,
};
static struct stub_device *devices[] = {&dev0};
static nvmlReturn_t handle_err[] = {0};

#elif defined(SCENARIO_PARTIAL)
/* An old or half-broken driver: no nvmlDeviceGetCudaComputeCapability and
 * no MIG entry points, a UUID query that fails, and a second GPU that has
 * fallen off the bus. */
#define DRIVER "418.226.00"
static struct stub_device dev0 = {
	.name = "Tesla T4",
	.uuid = "GPU-unused",
	.uuid_err = NVML_ERROR_UNKNOWN,
	.major = 7,
	.minor = 5,
	.total_mib = 15109,
	.used_mib = 0,
	/* no PCIe data: the queries answer NOT_SUPPORTED */
};
static struct stub_device *devices[] = {&dev0, NULL};
static nvmlReturn_t handle_err[] = {0, NVML_ERROR_GPU_IS_LOST};
#define NO_CC
#define NO_MIG

#else
#error "define one SCENARIO_*"
#endif

static int init_count;

static int valid(nvmlDevice_t d)
{
	if (d == NULL)
		return 0;
	for (size_t i = 0; i < sizeof devices / sizeof devices[0]; i++) {
		if (devices[i] == NULL)
			continue;
		if (devices[i] == d)
			return 1;
		for (int j = 0; j < MAX_MIG; j++)
			if (devices[i]->mig[j] == d)
				return 1;
	}
	return 0;
}

/* check validates the common preconditions of a device query. */
static nvmlReturn_t check(nvmlDevice_t d, const void *out)
{
	if (init_count == 0)
		return NVML_ERROR_UNINITIALIZED;
	if (!valid(d) || out == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	return NVML_SUCCESS;
}

static nvmlReturn_t copy_string(char *dst, unsigned int n, const char *src)
{
	if (dst == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (strlen(src) + 1 > n)
		return NVML_ERROR_INSUFFICIENT_SIZE;
	memcpy(dst, src, strlen(src) + 1);
	return NVML_SUCCESS;
}

EXPORT int gpustub_nvml_init_count(void) { return init_count; }

EXPORT const char *nvmlErrorString(nvmlReturn_t r)
{
	switch (r) {
	case NVML_SUCCESS: return "Success";
	case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
	case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
	case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
	case NVML_ERROR_NOT_FOUND: return "Not Found";
	case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
	case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
	case NVML_ERROR_GPU_IS_LOST: return "GPU is lost";
	default: return "Unknown Error";
	}
}

EXPORT nvmlReturn_t nvmlInit_v2(void)
{
#ifdef SCENARIO_FAILING
	return NVML_ERROR_DRIVER_NOT_LOADED;
#else
	init_count++;
	return NVML_SUCCESS;
#endif
}

EXPORT nvmlReturn_t nvmlShutdown(void)
{
	if (init_count == 0)
		return NVML_ERROR_UNINITIALIZED;
	init_count--;
	return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
	if (init_count == 0)
		return NVML_ERROR_UNINITIALIZED;
	return copy_string(version, length, DRIVER);
}

EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
	if (init_count == 0)
		return NVML_ERROR_UNINITIALIZED;
	if (count == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	*count = sizeof devices / sizeof devices[0];
	return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
	if (init_count == 0)
		return NVML_ERROR_UNINITIALIZED;
	if (device == NULL || index >= sizeof devices / sizeof devices[0])
		return NVML_ERROR_INVALID_ARGUMENT;
	if (handle_err[index] != 0)
		return handle_err[index];
	*device = devices[index];
	return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t d, char *name, unsigned int length)
{
	nvmlReturn_t r = check(d, name);
	return r ? r : copy_string(name, length, d->name);
}

EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t d, char *uuid, unsigned int length)
{
	nvmlReturn_t r = check(d, uuid);
	if (r)
		return r;
	if (d->uuid_err)
		return d->uuid_err;
	return copy_string(uuid, length, d->uuid);
}

#ifndef NO_CC
EXPORT nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t d, int *major, int *minor)
{
	nvmlReturn_t r = check(d, major);
	if (r)
		return r;
	if (minor == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	*major = d->major;
	*minor = d->minor;
	return NVML_SUCCESS;
}
#endif

EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t d, nvmlMemory_t *memory)
{
	nvmlReturn_t r = check(d, memory);
	if (r)
		return r;
	memory->total = d->total_mib * MIB;
	memory->used = d->used_mib * MIB;
	memory->free = memory->total - memory->used;
	return NVML_SUCCESS;
}

static nvmlReturn_t pcie(nvmlDevice_t d, unsigned int *out, unsigned int v)
{
	nvmlReturn_t r = check(d, out);
	if (r)
		return r;
	if (d->is_mig || v == 0)
		return NVML_ERROR_NOT_SUPPORTED;
	*out = v;
	return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMaxPcieLinkGeneration(nvmlDevice_t d, unsigned int *gen)
{
	return pcie(d, gen, valid(d) ? d->max_gen : 0);
}

EXPORT nvmlReturn_t nvmlDeviceGetCurrPcieLinkGeneration(nvmlDevice_t d, unsigned int *gen)
{
	return pcie(d, gen, valid(d) ? d->cur_gen : 0);
}

EXPORT nvmlReturn_t nvmlDeviceGetCurrPcieLinkWidth(nvmlDevice_t d, unsigned int *width)
{
	return pcie(d, width, valid(d) ? d->width : 0);
}

#ifndef NO_MIG
EXPORT nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t d, unsigned int *current, unsigned int *pending)
{
	nvmlReturn_t r = check(d, current);
	if (r)
		return r;
	if (pending == NULL)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (!d->mig_capable || d->is_mig)
		return NVML_ERROR_NOT_SUPPORTED;
	*current = *pending = (unsigned int)d->mig_mode;
	return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMaxMigDeviceCount(nvmlDevice_t d, unsigned int *count)
{
	nvmlReturn_t r = check(d, count);
	if (r)
		return r;
	if (!d->mig_capable || d->is_mig)
		return NVML_ERROR_NOT_SUPPORTED;
	*count = MAX_MIG;
	return NVML_SUCCESS;
}

EXPORT nvmlReturn_t nvmlDeviceGetMigDeviceHandleByIndex(nvmlDevice_t d, unsigned int index, nvmlDevice_t *mig)
{
	nvmlReturn_t r = check(d, mig);
	if (r)
		return r;
	if (!d->mig_capable || d->is_mig)
		return NVML_ERROR_NOT_SUPPORTED;
	if (!d->mig_mode)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (index >= MAX_MIG)
		return NVML_ERROR_INVALID_ARGUMENT;
	if (d->mig[index] == NULL)
		return NVML_ERROR_NOT_FOUND;
	*mig = d->mig[index];
	return NVML_SUCCESS;
}
#endif
