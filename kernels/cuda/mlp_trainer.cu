// train_mlp on NVIDIA GPUs: the model of mlp_cpu.h (tanh hidden layer, linear output, mean
// squared error, plain SGD) with every matrix product on cuBLAS (cublasGemmEx: fp32, or bf16 inputs
// with fp32 accumulation) and the kernels of mlp_kernels.cuh for the rest. Weights start from the
// same MlpWeights::Init as the CPU, the data is the same SplitMix64 stream (counter-based, so
// element n is computed on its own thread), and the loss curve matches the CPU reference within
// the tolerance stated in train_backend.h. Data parallel over a job's GPUs (and workers) with an
// in-place NCCL all-reduce, watched and aborted on error, cancel or timeout.
//
// Matrices are row-major as on the CPU. cuBLAS is column-major, so Gemm() below computes the
// row-major C = op(A)·op(B) as the column-major Cᵀ = op(B)ᵀ·op(A)ᵀ, swapping the operands.
#include "kernels/cuda/mlp_trainer.cuh"

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_support.cuh"
#include "kernels/cuda/mlp_kernels.cuh"
#include "kernels/cuda/nccl_comm.cuh"
#include "kernels/data_parallel_sync.h"
#include "kernels/mlp_cpu.h"

namespace tessera::kernels::gpu {
namespace {


// Rows per forward pass when the loss is taken over the whole dataset (bounds device memory).
constexpr uint32_t kLossChunkRows = 8'192;

// A row-major fp32 matrix and, in bf16 mode, its bf16 shadow (the GEMMs' input).
struct Operand {
  const void* data;
  cudaDataType type;
};

class Trainer {
 public:
  explicit Trainer(const MlpConfig& config) : c_(config), bf16_(config.precision == Precision::kBf16) {}
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;
  // A data-parallel job destroys its trainers on the caller's thread, whose current device is
  // another: the handle is destroyed on its own device (the buffers free themselves on theirs).
  ~Trainer() {
    // Aborted before the buffers are freed: cudaFree waits for the device, which would wait forever
    // for a collective whose peer is gone.
    if (const std::shared_ptr<Comm> comm = this->comm()) comm->Abort();
    if (blas_ == nullptr) return;
    ScopedDevice on(device());
    (void)cublasDestroy(blas_);
  }

  // Data parallel: this trainer is global `rank` of `world`; each step it takes its share of the
  // batch and the gradients are summed over all ranks (ncclAllReduce, in place) before the update.
  // Non-blocking, so that the watchdog can abort it while it waits for peers.
  // Call it after Prepare: no device allocation may follow, while peers may already run collectives.
  absl::Status JoinCommunicator(const ncclUniqueId& id, uint32_t world, uint32_t rank) {
    TESSERA_CUDA_TRY(CudaStatus(cudaSetDevice(device()), "cudaSetDevice"));
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    ncclComm_t raw = nullptr;
    const ncclResult_t started = ncclCommInitRankConfig(&raw, static_cast<int>(world), id, static_cast<int>(rank), &config);
    if (raw == nullptr) return NcclStatus(started == ncclSuccess ? ncclInternalError : started, "ncclCommInitRankConfig");
    auto comm = std::make_shared<Comm>(raw);
    {
      std::lock_guard lock(comm_mu_);
      comm_ = comm;
    }
    rank_ = rank;
    world_ = world;
    TESSERA_CUDA_TRY(NcclStatus(started, "ncclCommInitRankConfig"));
    return AwaitComm(*comm, "ncclCommInitRankConfig");
  }
  // Whether the communicator formed and carried a step (the watchdog's deadline is for forming).
  bool trained_a_step() const { return stepped_.load(); }
  // Null until JoinCommunicator has started one. The watchdog reads it from its own thread.
  std::shared_ptr<Comm> comm() const {
    std::lock_guard lock(comm_mu_);
    return comm_;
  }

  absl::StatusOr<TrainResult> Run(const std::function<void(const EpochReport&)>& on_epoch, const std::atomic<bool>* cancel) {
    TESSERA_CUDA_TRY(Prepare());
    return Train(on_epoch, cancel);
  }

  // Everything before the first step that allocates device memory or may (cuBLAS sets up on its
  // first GEMMs, which the initial loss runs): a data-parallel rank finishes it before any rank
  // joins the communicator.
  absl::Status Prepare() {
    TESSERA_CUDA_TRY(CudaStatus(cudaSetDevice(device()), "cudaSetDevice"));
    TESSERA_CUDA_TRY(BlasStatus(cublasCreate(&blas_), "cublasCreate"));
    // fp32 GEMMs stay fp32 (no TF32): the CPU reference is the yardstick.
    TESSERA_CUDA_TRY(BlasStatus(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH), "cublasSetMathMode"));
    TESSERA_CUDA_TRY(Allocate());
    TESSERA_CUDA_TRY(MakeDataset());
    TESSERA_CUDA_TRY(InitWeights());
    absl::StatusOr<float> loss = DatasetLoss();
    if (!loss.ok()) return loss.status();
    initial_loss_ = *loss;
    return CudaStatus(cudaDeviceSynchronize(), "prepare");
  }

  // The epochs, after Prepare (and JoinCommunicator when data parallel).
  absl::StatusOr<TrainResult> Train(const std::function<void(const EpochReport&)>& on_epoch, const std::atomic<bool>* cancel) {
    TESSERA_CUDA_TRY(CudaStatus(cudaSetDevice(device()), "cudaSetDevice"));
    TrainResult result;
    result.initial_loss = initial_loss_;
    for (uint32_t epoch = 1; epoch <= c_.epochs; ++epoch) {
      for (uint32_t first = 0; first < c_.samples; first += c_.batch_size) {
        if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) return absl::CancelledError("train_mlp cancelled");
        TESSERA_CUDA_TRY(Step(first, std::min(c_.batch_size, c_.samples - first)));
      }
      absl::StatusOr<float> epoch_loss = DatasetLoss();
      if (!epoch_loss.ok()) return epoch_loss.status();
      result.loss_per_epoch.push_back(*epoch_loss);
      if (on_epoch) on_epoch(EpochReport{.epoch = epoch, .epochs = c_.epochs, .loss = *epoch_loss});
    }
    result.final_loss = result.loss_per_epoch.empty() ? result.initial_loss : result.loss_per_epoch.back();
    absl::StatusOr<MlpWeights> weights = DownloadWeights();
    if (!weights.ok()) return weights.status();
    result.weights_sha256 = WeightsSha256(*weights);
    return result;
  }

 private:
  int device() const { return c_.devices.empty() ? 0 : static_cast<int>(c_.devices.front()); }
  size_t W1Size() const { return static_cast<size_t>(c_.input_dim) * c_.hidden_dim; }
  size_t W2Size() const { return static_cast<size_t>(c_.hidden_dim) * c_.output_dim; }
  size_t ParamCount() const { return W1Size() + c_.hidden_dim + W2Size() + c_.output_dim; }
  // Parameters and gradients are one buffer each: [W1 | b1 | W2 | b2].
  float* W1(float* base) const { return base; }
  float* B1(float* base) const { return base + W1Size(); }
  float* W2(float* base) const { return base + W1Size() + c_.hidden_dim; }
  float* B2(float* base) const { return base + W1Size() + c_.hidden_dim + W2Size(); }

  absl::Status Allocate() {
    const uint32_t rows = std::max(c_.batch_size, std::min(c_.samples, kLossChunkRows));
    TESSERA_CUDA_TRY(x_.Allocate(static_cast<size_t>(c_.samples) * c_.input_dim));
    TESSERA_CUDA_TRY(y_.Allocate(static_cast<size_t>(c_.samples) * c_.output_dim));
    TESSERA_CUDA_TRY(params_.Allocate(ParamCount()));
    TESSERA_CUDA_TRY(grads_.Allocate(ParamCount()));
    TESSERA_CUDA_TRY(h_.Allocate(static_cast<size_t>(rows) * c_.hidden_dim));
    TESSERA_CUDA_TRY(out_.Allocate(static_cast<size_t>(rows) * c_.output_dim));
    TESSERA_CUDA_TRY(d_out_.Allocate(static_cast<size_t>(rows) * c_.output_dim));
    TESSERA_CUDA_TRY(d_h_.Allocate(static_cast<size_t>(rows) * c_.hidden_dim));
    TESSERA_CUDA_TRY(loss_sum_.Allocate(1));
    if (bf16_) {
      TESSERA_CUDA_TRY(x_bf16_.Allocate(x_.count()));
      TESSERA_CUDA_TRY(params_bf16_.Allocate(ParamCount()));
      TESSERA_CUDA_TRY(h_bf16_.Allocate(h_.count()));
      TESSERA_CUDA_TRY(d_out_bf16_.Allocate(d_out_.count()));
      TESSERA_CUDA_TRY(d_h_bf16_.Allocate(d_h_.count()));
    }
    return absl::OkStatus();
  }

  // The CPU's MakeTeacherDataset, on the device: the stream draws the teacher's W1, then its W2,
  // then the inputs, in that order.
  absl::Status MakeDataset() {
    const uint64_t state0 = c_.seed ^ 0x7E55E4A0DA7A5E7ULL;
    const size_t t1 = static_cast<size_t>(c_.input_dim) * kTeacherHidden, t2 = static_cast<size_t>(kTeacherHidden) * c_.output_dim;
    DeviceBuffer<float> teacher;
    TESSERA_CUDA_TRY(teacher.Allocate(t1 + t2));
    const float scale1 = 1.0f / std::sqrt(static_cast<float>(c_.input_dim));
    FillSymmetric<<<Blocks(t1), kThreads>>>(teacher.get(), t1, state0, 0, scale1, 1.7f);
    FillSymmetric<<<Blocks(t2), kThreads>>>(teacher.get() + t1, t2, state0, t1, 0.5f, 1.0f);
    FillSymmetric<<<Blocks(x_.count()), kThreads>>>(x_.get(), x_.count(), state0, t1 + t2, 1.0f, 1.0f);
    TeacherTargets<<<(c_.samples + kThreads - 1) / kThreads, kThreads>>>(x_.get(), teacher.get(), teacher.get() + t1, y_.get(),
                                                                         c_.samples, c_.input_dim, c_.output_dim);
    if (bf16_) ToBf16<<<Blocks(x_.count()), kThreads>>>(x_.get(), x_bf16_.get(), x_.count());
    TESSERA_CUDA_TRY(CudaStatus(cudaGetLastError(), "dataset kernels"));
    return CudaStatus(cudaDeviceSynchronize(), "dataset");  // `teacher` is freed on return
  }

  absl::Status InitWeights() {
    const MlpWeights w = MlpWeights::Init(c_.seed, c_.input_dim, c_.hidden_dim, c_.output_dim);
    std::vector<float> host;
    host.reserve(ParamCount());
    for (const std::vector<float>* part : {&w.w1, &w.b1, &w.w2, &w.b2}) host.insert(host.end(), part->begin(), part->end());
    TESSERA_CUDA_TRY(CudaStatus(cudaMemcpy(params_.get(), host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice), "upload weights"));
    if (bf16_) ToBf16<<<Blocks(ParamCount()), kThreads>>>(params_.get(), params_bf16_.get(), ParamCount());
    return CudaStatus(cudaGetLastError(), "init weights");
  }

  absl::StatusOr<MlpWeights> DownloadWeights() {
    std::vector<float> host(ParamCount());
    TESSERA_CUDA_TRY(CudaStatus(cudaMemcpy(host.data(), params_.get(), host.size() * sizeof(float), cudaMemcpyDeviceToHost), "download weights"));
    MlpWeights w{.input_dim = c_.input_dim, .hidden_dim = c_.hidden_dim, .output_dim = c_.output_dim, .w1 = {}, .b1 = {}, .w2 = {}, .b2 = {}};
    auto at = host.begin();
    for (auto [part, n] : {std::pair{&w.w1, W1Size()}, {&w.b1, size_t{c_.hidden_dim}}, {&w.w2, W2Size()}, {&w.b2, size_t{c_.output_dim}}}) {
      part->assign(at, at + static_cast<std::ptrdiff_t>(n));
      at += static_cast<std::ptrdiff_t>(n);
    }
    return w;
  }

  // The operand a GEMM reads for an fp32 buffer at `offset` of `fp32` (or of its bf16 shadow).
  Operand Of(const float* fp32, const __nv_bfloat16* shadow, size_t offset) const {
    if (bf16_) return {shadow + offset, CUDA_R_16BF};
    return {fp32 + offset, CUDA_R_32F};
  }
  Operand W1Operand() const { return Of(params_.get(), params_bf16_.get(), 0); }
  Operand W2Operand() const { return Of(params_.get(), params_bf16_.get(), W1Size() + c_.hidden_dim); }

  // Row-major C[m×n] = op(A)·op(B) (+ beta·C): A is stored [m×k] ([k×m] when a_t), B [k×n] ([n×k]
  // when b_t).
  absl::Status Gemm(bool a_t, bool b_t, uint32_t m, uint32_t n, uint32_t k, Operand a, Operand b, float* c) {
    const float alpha = 1.0f, beta = 0.0f;
    return BlasStatus(cublasGemmEx(blas_, b_t ? CUBLAS_OP_T : CUBLAS_OP_N, a_t ? CUBLAS_OP_T : CUBLAS_OP_N,
                                   static_cast<int>(n), static_cast<int>(m), static_cast<int>(k), &alpha,
                                   b.data, b.type, static_cast<int>(b_t ? k : n),
                                   a.data, a.type, static_cast<int>(a_t ? m : k), &beta,
                                   c, CUDA_R_32F, static_cast<int>(n), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                      "cublasGemmEx");
  }

  // Hidden activations of `rows` samples from `first`: h = tanh(x·W1 + b1), then out = h·W2 (bias
  // not yet added).
  absl::Status Forward(uint32_t first, uint32_t rows) {
    float* p = params_.get();
    const size_t x_at = static_cast<size_t>(first) * c_.input_dim;
    TESSERA_CUDA_TRY(Gemm(false, false, rows, c_.hidden_dim, c_.input_dim, Of(x_.get(), x_bf16_.get(), x_at),
                          W1Operand(), h_.get()));
    const uint64_t nh = static_cast<uint64_t>(rows) * c_.hidden_dim;
    BiasTanh<<<Blocks(nh), kThreads>>>(h_.get(), B1(p), bf16_ ? h_bf16_.get() : nullptr, nh, c_.hidden_dim);
    return Gemm(false, false, rows, c_.output_dim, c_.hidden_dim, Of(h_.get(), h_bf16_.get(), 0), W2Operand(), out_.get());
  }

  // One SGD step over the batch [batch_first, batch_first + batch_rows): this rank's share of it,
  // then (data parallel) the sum of every rank's gradients, each scaled for the whole batch.
  absl::Status Step(uint32_t batch_first, uint32_t batch_rows) {
    const uint32_t share = batch_rows / world_, extra = batch_rows % world_;
    const uint32_t rows = share + (rank_ < extra ? 1 : 0);
    const uint32_t first = batch_first + rank_ * share + std::min(rank_, extra);
    const float scale = 2.0f / (static_cast<float>(batch_rows) * static_cast<float>(c_.output_dim));
    if (rows == 0) {
      TESSERA_CUDA_TRY(CudaStatus(cudaMemset(grads_.get(), 0, ParamCount() * sizeof(float)), "cudaMemset"));
    } else {
      TESSERA_CUDA_TRY(Gradients(first, rows, scale));
    }
    if (const std::shared_ptr<Comm> comm = this->comm()) {
      TESSERA_CUDA_TRY(comm->AllReduceSum(grads_.get(), ParamCount(), nullptr));
      TESSERA_CUDA_TRY(AwaitComm(*comm, "ncclAllReduce"));
      stepped_ = true;
    }
    SgdUpdate<<<Blocks(ParamCount()), kThreads>>>(params_.get(), grads_.get(), bf16_ ? params_bf16_.get() : nullptr, ParamCount(),
                                                  c_.learning_rate);
    return CudaStatus(cudaGetLastError(), "training step");
  }

  // The gradients of `rows` samples from `first`, each sample's loss gradient scaled by `scale`.
  absl::Status Gradients(uint32_t first, uint32_t rows, float scale) {
    float* p = params_.get();
    float* g = grads_.get();
    TESSERA_CUDA_TRY(Forward(first, rows));
    const uint64_t no = static_cast<uint64_t>(rows) * c_.output_dim, nh = static_cast<uint64_t>(rows) * c_.hidden_dim;
    BiasResidual<<<Blocks(no), kThreads>>>(out_.get(), B2(p), y_.get() + static_cast<size_t>(first) * c_.output_dim, d_out_.get(),
                                           bf16_ ? d_out_bf16_.get() : nullptr, no, c_.output_dim, scale);
    // dW2 = hᵀ·d_out, db2 = Σ d_out; dh = d_out·W2ᵀ, dz = dh ⊙ (1 − h²); dW1 = xᵀ·dz, db1 = Σ dz.
    const Operand d_out = Of(d_out_.get(), d_out_bf16_.get(), 0);
    TESSERA_CUDA_TRY(Gemm(true, false, c_.hidden_dim, c_.output_dim, rows, Of(h_.get(), h_bf16_.get(), 0), d_out, W2(g)));
    ColumnSums<<<(c_.output_dim + kThreads - 1) / kThreads, kThreads>>>(d_out_.get(), B2(g), rows, c_.output_dim);
    TESSERA_CUDA_TRY(Gemm(false, true, rows, c_.hidden_dim, c_.output_dim, d_out, W2Operand(), d_h_.get()));
    TanhBackward<<<Blocks(nh), kThreads>>>(d_h_.get(), h_.get(), bf16_ ? d_h_bf16_.get() : nullptr, nh);
    TESSERA_CUDA_TRY(Gemm(true, false, c_.input_dim, c_.hidden_dim, rows,
                          Of(x_.get(), x_bf16_.get(), static_cast<size_t>(first) * c_.input_dim), Of(d_h_.get(), d_h_bf16_.get(), 0),
                          W1(g)));
    ColumnSums<<<(c_.hidden_dim + kThreads - 1) / kThreads, kThreads>>>(d_h_.get(), B1(g), rows, c_.hidden_dim);
    return CudaStatus(cudaGetLastError(), "gradients");
  }

  // Mean squared error over the whole dataset, in chunks.
  absl::StatusOr<float> DatasetLoss() {
    TESSERA_CUDA_TRY(CudaStatus(cudaMemset(loss_sum_.get(), 0, sizeof(double)), "cudaMemset"));
    const uint32_t chunk = static_cast<uint32_t>(std::min<size_t>(out_.count() / c_.output_dim, kLossChunkRows));
    for (uint32_t first = 0; first < c_.samples; first += chunk) {
      const uint32_t rows = std::min(chunk, c_.samples - first);
      TESSERA_CUDA_TRY(Forward(first, rows));
      const uint64_t no = static_cast<uint64_t>(rows) * c_.output_dim;
      SquaredError<<<std::min<unsigned>(Blocks(no), 1'024), kThreads>>>(out_.get(), B2(params_.get()),
                                                                        y_.get() + static_cast<size_t>(first) * c_.output_dim, no,
                                                                        c_.output_dim, loss_sum_.get());
    }
    double sum = 0;
    TESSERA_CUDA_TRY(CudaStatus(cudaMemcpy(&sum, loss_sum_.get(), sizeof sum, cudaMemcpyDeviceToHost), "loss"));
    return static_cast<float>(sum / (static_cast<double>(c_.samples) * c_.output_dim));
  }

  const MlpConfig c_;
  const bool bf16_;
  cublasHandle_t blas_ = nullptr;
  mutable std::mutex comm_mu_;
  std::atomic<bool> stepped_{false};
  std::shared_ptr<Comm> comm_;  // null: alone
  uint32_t rank_ = 0, world_ = 1;
  float initial_loss_ = 0;
  DeviceBuffer<float> x_, y_, params_, grads_, h_, out_, d_out_, d_h_;
  DeviceBuffer<double> loss_sum_;
  DeviceBuffer<__nv_bfloat16> x_bf16_, params_bf16_, h_bf16_, d_out_bf16_, d_h_bf16_;
};

// How long a communicator may take to form (every rank joined), counted from when the local ranks
// start joining it (their setup done), before the watchdog gives up.
constexpr auto kCommunicatorDeadline = std::chrono::seconds(120);

// Data-parallel train_mlp: one thread and one trainer per local GPU, each a rank of one NCCL
// communicator (with the ranks of the job's other workers when it spans several). Every local rank
// allocates first, then they pass a barrier and join (data_parallel_sync.h). A watchdog polls
// every communicator and aborts them all on an asynchronous error, a cancel, or a communicator
// that does not form in time: a dead peer fails the job cleanly instead of hanging the worker.
absl::StatusOr<TrainResult> TrainDataParallel(const MlpConfig& config, const std::function<void(const EpochReport&)>& on_epoch,
                                              const std::atomic<bool>* cancel) {
  const std::vector<uint32_t> local = config.devices.empty() ? std::vector<uint32_t>{0} : config.devices;
  const uint32_t world = config.communicator ? config.communicator->world_size : static_cast<uint32_t>(local.size());
  const uint32_t first_rank = config.communicator ? config.communicator->first_rank : 0;
  ncclUniqueId id{};
  if (config.communicator) {
    if (config.communicator->unique_id.size() != sizeof id.internal) {
      return absl::InvalidArgumentError(absl::StrCat("a communicator id is ", sizeof id.internal, " bytes, got ",
                                                     config.communicator->unique_id.size()));
    }
    std::memcpy(id.internal, config.communicator->unique_id.data(), sizeof id.internal);
  } else {
    TESSERA_CUDA_TRY(NcclStatus(ncclGetUniqueId(&id), "ncclGetUniqueId"));
  }
  if (first_rank + local.size() > world) return absl::InvalidArgumentError("the job's ranks exceed its world size");

  std::vector<std::unique_ptr<Trainer>> trainers;
  for (uint32_t d : local) {
    MlpConfig one = config;
    one.devices = {d};
    trainers.push_back(std::make_unique<Trainer>(one));
  }
  std::vector<std::optional<absl::StatusOr<TrainResult>>> results(local.size());  // each set by its thread
  std::atomic<int> running{static_cast<int>(local.size())};
  std::atomic<bool> stop{false};  // set on the first failure: the others stop at their next batch
  RankBarrier prepared(local.size());
  CommunicatorDeadline deadline(kCommunicatorDeadline);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < local.size(); ++i) {
    threads.emplace_back([&, i] {
      const absl::Status set_up = trainers[i]->Prepare();
      const bool all_set_up = prepared.ArriveAndWait(set_up.ok(), stop);
      auto join = [&]() -> absl::Status {
        if (!set_up.ok()) return set_up;
        if (!all_set_up) {
          return stop.load() ? absl::CancelledError("train_mlp stopped before the communicator formed")
                             : absl::AbortedError("another local rank failed to set up");
        }
        deadline.Start(std::chrono::steady_clock::now());
        return trainers[i]->JoinCommunicator(id, world, first_rank + static_cast<uint32_t>(i));
      };
      const absl::Status joined = join();
      absl::StatusOr<TrainResult> result =
          joined.ok() ? trainers[i]->Train(i == 0 ? on_epoch : nullptr, &stop) : absl::StatusOr<TrainResult>(joined);
      if (!result.ok()) stop = true;
      (void)results[i].emplace(std::move(result));
      --running;
    });
  }
  // The watchdog: the only thread that ever aborts a communicator while it is in use.
  std::string why;
  auto fail = [&](std::string reason) {
    if (why.empty()) why = std::move(reason);
    stop = true;
  };
  while (running > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (cancel != nullptr && cancel->load()) fail("cancelled");
    for (const auto& t : trainers) {
      const std::shared_ptr<Comm> comm = t->comm();
      const ncclResult_t e = comm == nullptr ? ncclInProgress : comm->AsyncError();
      if (e == ncclInProgress && !t->trained_a_step() && deadline.Overdue(std::chrono::steady_clock::now())) {
        fail("the communicator did not form in time");
      } else if (e != ncclSuccess && e != ncclInProgress) {
        fail(absl::StrCat("NCCL: ", ncclGetErrorString(e)));
      }
    }
    if (stop) {
      for (const auto& t : trainers) {
        if (auto comm = t->comm()) comm->Abort();
      }
    }
  }
  for (std::thread& t : threads) t.join();
  if (cancel != nullptr && cancel->load()) return absl::CancelledError("train_mlp cancelled");
  // The cause, not its echo: a rank that stopped because another failed says ABORTED.
  const absl::Status* failed = nullptr;
  for (auto& r : results) {
    if (!r->ok() && (failed == nullptr || (absl::IsAborted(*failed) && !absl::IsAborted(r->status())))) failed = &r->status();
  }
  if (failed != nullptr) {
    return why.empty() ? *failed : absl::Status(failed->code(), absl::StrCat(failed->message(), " (", why, ")"));
  }
  return *std::move(results[0]);  // every rank holds the same weights
}

}  // namespace
}  // namespace tessera::kernels::gpu

namespace tessera::kernels {

absl::StatusOr<TrainResult> TrainMlpOnCuda(const MlpConfig& config, const std::function<void(const EpochReport&)>& on_epoch,
                                           const std::atomic<bool>* cancel) {
  if (config.batch_size == 0 || config.samples == 0 || config.batch_size > config.samples) {
    return absl::InvalidArgumentError("batch_size must be in 1..samples");
  }
  if (!config.communicator && config.devices.size() <= 1) {
    gpu::Trainer trainer(config);
    return trainer.Run(on_epoch, cancel);
  }
  return gpu::TrainDataParallel(config, on_epoch, cancel);
}

}  // namespace tessera::kernels
